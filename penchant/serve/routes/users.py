from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from penchant.serve.deps import CanAdmin, CanRead, ServicesDep
from penchant.serve.routes.params import UserId
from penchant.serve.schemas import EventOut, EventPage, UserErased, UserList, UserSummary, storable_text

router = APIRouter(tags=["users"])


@router.get("/users", response_model=UserList, dependencies=[CanRead])
def list_users(
    services: ServicesDep,
    prefix: Annotated[
        str,
        Query(max_length=256, description="only users whose ID starts with this"),
        AfterValidator(storable_text),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> UserList:
    """Users with stored events, in ID order, with how many events each has."""
    rows = services.store.users(prefix, limit)
    return UserList(users=[UserSummary(user_id=u, events=n) for u, n in rows])


@router.get("/users/{user_id}/events", response_model=EventPage, dependencies=[CanRead])
def user_events(
    services: ServicesDep,
    user_id: UserId,
    limit: Annotated[int, Query(ge=1, le=1000, description="events per page")] = 100,
    after: Annotated[
        str | None, Query(max_length=200, description="the 'next' cursor of the previous page")
    ] = None,
    latest: Annotated[
        bool, Query(description="the most recent 'limit' events instead of the first page")
    ] = False,
) -> EventPage:
    """The user's stored events, newest last, a page at a time."""
    events, following = services.store.user_events(user_id, limit, after, latest)
    return EventPage(
        events=[
            EventOut(
                id=e.id,
                user_id=e.user_id,
                item_id=e.item_id,
                timestamp=e.timestamp,
                event_type=e.event_type,
                value=e.value,
                text=e.text,
                title=e.title,
            )
            for e in events
        ],
        next=following,
    )


# {user_id:path}: an ID with '/' (imported from a run file; POST /events refuses new ones) can still be
# erased, percent-encoded (%2F) or not. No other DELETE route lives under /users/.
@router.delete("/users/{user_id:path}", response_model=UserErased, dependencies=[CanAdmin])
def erase_user(services: ServicesDep, user_id: UserId) -> UserErased:
    """Erase the user's stored events, their events in the served run's directory (data, model
    history, review text and its cached vectors) and their online state. Their next recommendation is
    a new user's."""
    deleted = services.store.erase_user(user_id)
    services.models.erase_user(user_id)
    services.answers.forget(user_id)
    return UserErased(user_id=user_id, events_deleted=deleted)
