"""Request and response bodies. Requests are strict (unknown fields refused, every string checked);
responses say exactly what the service returns. Each becomes part of the OpenAPI schema."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    WithJsonSchema,
)


def storable_text(text: str) -> str:
    """Text both databases can store as given."""
    # PostgreSQL text cannot hold NUL, and lone surrogates (legal in JSON escapes) are not UTF-8.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return text


def external_id(text: str) -> str:
    """An external user or item ID: storable text without surrounding whitespace (which would make
    two IDs look the same)."""
    text = storable_text(text)
    if text != text.strip():
        raise ValueError("must not start or end with whitespace")
    return text


ExternalId = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(external_id)]


def routable_user_id(text: str) -> str:
    """A user ID every /users/{user_id}/... route can name: no '/'."""
    if "/" in text:
        raise ValueError("must not contain '/': the /users/{user_id} routes could not name this user")
    return text


NewUserId = Annotated[ExternalId, AfterValidator(routable_user_id)]
ShortText = Annotated[str, Field(max_length=1000), AfterValidator(storable_text)]
LongText = Annotated[str, Field(max_length=20_000), AfterValidator(storable_text)]

MIN_TIME, MAX_TIME = 0.0, 253402300799.0  # 1970-01-01 .. 9999-12-31


def _unix_seconds(value: Any) -> float:
    """Unix seconds (a number, or a string holding one) or an ISO 8601 date-time (UTC when it has no zone)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected Unix seconds or an ISO 8601 date-time")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"expected Unix seconds or an ISO 8601 date-time, got '{value[:40]}'"
                ) from None
            value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value) or not MIN_TIME <= value <= MAX_TIME:
        raise ValueError("must be Unix seconds between 1970 and 9999 (or an ISO 8601 date-time)")
    return float(value)


Timestamp = Annotated[
    float,
    BeforeValidator(_unix_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": MIN_TIME, "maximum": MAX_TIME},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------------------------------- events
class EventIn(Strict):
    """One thing a user did."""

    user_id: NewUserId
    item_id: ExternalId
    timestamp: Timestamp = Field(description="Unix seconds, or an ISO 8601 date-time")
    event_type: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(external_id)] | None = (
        Field(None, description="view, click, purchase, rating, review, search, ...")
    )
    value: float | None = Field(None, description="a rating, dwell time or price")
    text: LongText | None = Field(None, description="a review, comment or query")
    request_id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(external_id)] | None = (
        Field(
            None,
            description="the request_id of the recommendation response that showed this item: the event "
            "rewards that impression (without it, an impression of the item within the reward window)",
        )
    )


def _event_shape(body: Any) -> str:
    return "batch" if isinstance(body, list) else "event"


class EventsIn(RootModel):
    """One event as an object, or a batch as an array of them; only the matching shape's errors are
    reported."""

    root: Annotated[
        Annotated[EventIn, Tag("event")] | Annotated[list[EventIn], Tag("batch")],
        Discriminator(_event_shape),
    ]


class EventsStored(BaseModel):
    received: int = Field(description="events in the request")
    stored: int = Field(description="events newly stored; the rest were already stored (exact duplicates)")
    rewarded: int = Field(0, description="impressions (shown recommended items) these events rewarded")


class EventOut(BaseModel):
    id: int
    user_id: str
    item_id: str
    timestamp: float
    event_type: str | None
    value: float | None
    text: str | None
    title: str | None = Field(description="the item's title, when the catalogue has one")


class EventPage(BaseModel):
    events: list[EventOut] = Field(description="oldest first")
    next: str | None = Field(description="pass as 'after' for the following page; null on the last page")


class UserSummary(BaseModel):
    user_id: str
    events: int


class UserList(BaseModel):
    users: list[UserSummary]


class UserErased(BaseModel):
    user_id: str
    events_deleted: int


# ---------------------------------------------------------------------------------------- items
class ItemIn(Strict):
    item_id: ExternalId
    title: ShortText | None = None
    description: LongText | None = None
    categories: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text)]],
            Field(max_length=100),
        ]
        | None
    ) = None


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    description: str | None
    categories: list[str] | None
    recommendable: bool = Field(
        description="whether the loaded model can recommend it; items added after training cannot yet "
        "(until a model that reads item text is served)"
    )


# ---------------------------------------------------------------------------------------- recommendations
class RecommendationOut(BaseModel):
    item_id: str
    score: float
    title: str | None
    role: str | None = Field(
        None, description="with a policy: exploit (among the model's own top k) or explore (brought in)"
    )
    interest: str | None = Field(None, description="with a policy: the interest the item serves")
    propensity: float = Field(
        description="the probability that the policy shows this item at this position (1 unless it samples)"
    )


class RecommendationsOut(BaseModel):
    request_id: str | None = Field(
        description="this response's impression: send it with an event of a shown item to reward it; "
        "null for a user with no stored events (the popular fallback is not logged)"
    )
    user_id: str
    items: list[RecommendationOut]
    model: str
    retrieval: str = Field(description="exact or ann")
    history_length: int = Field(description="stored events of the user the model read")
    exclude_seen: bool = Field(description="whether items the user already has were left out")
    fallback: str | None = Field(
        None,
        description="'popular' when no stored event of the user was usable (a new user): the list is "
        "the most popular items; null otherwise",
    )
    policy: str | None = Field(description="the exploration policy that re-ranked the list, if any")
    explore: float = Field(description="0: the model's own ranking; 1: the policy's objective only")


class HistoryContributionOut(BaseModel):
    item_id: str
    title: str | None
    position: int = Field(description="0 = the first event of the weighed history")
    timestamp: float
    weight: float = Field(description="drop in the item's score without this event")
    interests: list[str]


class InterestWeightOut(BaseModel):
    interest: str
    weight: float


class ExplanationOut(BaseModel):
    user_id: str
    item_id: str
    title: str | None
    score: float
    rank: int = Field(description="the item's rank in the user's full-catalogue ranking, 1 = top")
    n_history: int = Field(description="events weighed (the most recent ones, up to the service's limit)")
    method: str
    items: list[HistoryContributionOut] = Field(description="past items, largest weight first")
    interests: list[InterestWeightOut] = Field(description="largest weight first")


class RateOut(BaseModel):
    policy: str | None = Field(description="the exploration policy; null: the model's own ranking")
    role: str | None = Field(description="exploit or explore; null without a policy")
    shown: int = Field(description="items shown")
    rewarded: int = Field(description="of those, items a later event of the user rewarded")
    ctr: float | None = Field(description="rewarded / shown")
    start: float | None = Field(None, description="in a timeline: the bucket's start (Unix seconds)")


class FeedbackOut(BaseModel):
    since: float = Field(description="impressions shown from this time on (Unix seconds)")
    bucket_seconds: float
    reward_window_seconds: float = Field(description="an event this soon after an impression rewards it")
    totals: list[RateOut] = Field(description="per policy and role")
    timeline: list[RateOut] = Field(description="per time bucket, policy and role, oldest first")


# ---------------------------------------------------------------------------------------- profiles
class InterestShiftOut(BaseModel):
    interest: str
    long_term: float
    short_term: float
    change: float


class ProfileOut(BaseModel):
    """The same object as ``penchant profile --json`` (the summary is always the deterministic one)."""

    user_id: str
    long_term: list[InterestWeightOut] = Field(description="time-decayed shares, strongest first")
    short_term: list[InterestWeightOut] = Field(description="shares in the recent window, decayed alike")
    emerging: list[InterestShiftOut]
    fading: list[InterestShiftOut]
    summary: str
    summary_source: str
    n_events: int
    short_term_window: str
    settings: dict[str, Any]
    shift_note: str | None = Field(
        None, description="why emerging and fading were not computed (a history too short to tell)"
    )


# ---------------------------------------------------------------------------------------- service
class Health(BaseModel):
    status: str
    auth: str = Field(description="keys (X-API-Key required) or open")
    # With a valid key (or an open service) only: what is served.
    model: str | None = None
    run: str | None = None
    items: int | None = None
    retrieval: str | None = None
    erased_users_in_weights: int | None = Field(
        None,
        description="users erased from this run since it was trained: their data is gone from the run "
        "and the store, but the trained weights still reflect it until the next penchant train",
    )


class Readiness(BaseModel):
    status: str
    database: str
    schema_version: int


class Reloaded(BaseModel):
    model: str
    run: str
    retrieval: str
    loaded_at: float


class ErrorOut(BaseModel):
    detail: str = Field(description="one line: what is wrong and where (the request field)")
    errors: list[dict[str, str]] | None = Field(None, description="every problem found, field by field")
