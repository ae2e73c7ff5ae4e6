import time
from typing import Annotated

from fastapi import APIRouter, Query

from penchant.serve.deps import CanRead, ServicesDep
from penchant.serve.schemas import FeedbackOut, RateOut

router = APIRouter(tags=["feedback"])


@router.get("/feedback", response_model=FeedbackOut, dependencies=[CanRead])
def feedback(
    services: ServicesDep,
    hours: Annotated[float, Query(gt=0, le=24 * 366, allow_inf_nan=False, description="look back")] = 24.0,
    bucket: Annotated[
        float, Query(ge=1, le=7 * 86_400, allow_inf_nan=False, description="timeline bucket, seconds")
    ] = 3600.0,
) -> FeedbackOut:
    """Click-through of the recommendations shown in the last ``hours``, from the impressions every
    replica logged: items shown and rewarded per policy and role (explore vs exploit), in total and per
    time bucket. An item is rewarded by a later event of the user that names the response's
    ``request_id``, or that comes within the reward window."""
    since = time.time() - hours * 3600
    if (hours * 3600) / bucket > 1000:
        bucket = hours * 3600 / 1000  # at most 1000 buckets per series
    feedback = services.feedback
    return FeedbackOut(
        since=since,
        bucket_seconds=bucket,
        reward_window_seconds=feedback.window,
        totals=[_rate(r) for r in feedback.rates(since)],
        timeline=[_rate(r) for r in feedback.rates(since, bucket)],
    )


def _rate(r) -> RateOut:
    return RateOut(
        policy=r.policy or None, role=r.role, shown=r.shown, rewarded=r.rewarded, ctr=r.ctr, start=r.start
    )
