import logging

from fastapi import APIRouter, HTTPException

from penchant.serve.deps import CanWrite, ServicesDep
from penchant.serve.schemas import EventIn, EventsIn, EventsStored
from penchant.serve.store import Event

router = APIRouter(tags=["events"])
log = logging.getLogger("penchant.serve")


@router.post("/events", response_model=EventsStored, dependencies=[CanWrite])
def post_events(services: ServicesDep, body: EventsIn) -> EventsStored:
    """Record one event or a batch. The response is sent only after the events are durably committed;
    the next recommendation for the user reflects them."""
    events = body.root if isinstance(body.root, list) else [body.root]
    limit = services.settings.max_batch
    if not events:
        raise HTTPException(422, "events: the array is empty; send at least one event")
    if len(events) > limit:
        raise HTTPException(413, f"events: at most {limit} events per request, got {len(events)}")
    converted = [_event(e) for e in events]
    stored = services.store.add_events(converted)
    services.metrics.events_stored.inc(stored)
    # The events are committed already: a failure below must not turn their 2xx into an error.
    rewarded = 0
    try:
        rewards = services.answers.rewards(zip(converted, (e.request_id for e in events), strict=True))
        for reward in rewards:
            services.metrics.rewards.labels(reward.policy or "none", reward.role or "none").inc()
        rewarded = len(rewards)
    except Exception:
        log.exception("could not credit the impressions these events reward")
    try:
        # The write pays for the model state, so the next read is cheap (the read recomputes it if not).
        services.answers.refresh(e.user_id for e in events)
    except Exception:
        log.exception("could not refresh the online state after storing events")
    return EventsStored(received=len(events), stored=stored, rewarded=rewarded)


def _event(e: EventIn) -> Event:
    return Event(e.user_id, e.item_id, e.timestamp, e.event_type, e.value, e.text)
