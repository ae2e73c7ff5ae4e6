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
    stored = services.store.add_events([_event(e) for e in events])
    services.metrics.events_stored.inc(stored)
    try:
        # The write pays for the model state, so the next read is cheap. The events are committed
        # already: a failure here must not turn their 2xx into an error, and the read recomputes.
        services.answers.refresh(e.user_id for e in events)
    except Exception:
        log.exception("could not refresh the online state after storing events")
    return EventsStored(received=len(events), stored=stored)


def _event(e: EventIn) -> Event:
    return Event(e.user_id, e.item_id, e.timestamp, e.event_type, e.value, e.text)
