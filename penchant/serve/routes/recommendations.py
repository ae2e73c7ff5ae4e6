from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from penchant.serve.deps import CanRead, ServicesDep
from penchant.serve.interests import PolicyName
from penchant.serve.routes.params import ItemId, UserId
from penchant.serve.schemas import ErrorOut, ExplanationOut, RecommendationsOut

router = APIRouter(tags=["recommendations"])


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsOut,
    dependencies=[CanRead],
    responses={
        404: {
            "model": ErrorOut,
            "description": "with --unknown-users 404: no usable stored events of the user",
        },
        409: {"model": ErrorOut, "description": "a policy, and the served run has no interests"},
    },
)
async def recommendations(
    services: ServicesDep,
    user_id: UserId,
    k: Annotated[int, Query(ge=1, description="how many items")] = 10,
    exclude_seen: Annotated[
        bool | None,
        Query(
            description="leave out items the user already has; not given: as the run decided from its "
            "training data (left out unless people there come back to items)"
        ),
    ] = None,
    explore: Annotated[
        float,
        Query(
            ge=0.0, le=1.0, allow_inf_nan=False, description="0: the model's ranking; 1: the policy's only"
        ),
    ] = 0.0,
    policy: Annotated[
        PolicyName | None, Query(description="re-rank the model's top candidates; marks each item's role")
    ] = None,
) -> JSONResponse:
    """The top-k items for the user from everything stored about them, including events recorded a
    moment ago. A user with no usable events gets the most popular items, marked ``fallback:
    "popular"`` (or 404 when the service runs with ``--unknown-users 404``). With a ``policy``, the model's top
    candidates are re-ranked at ``explore`` and each item says its role and interest.

    Async: a cached user is answered on the event loop, anything slower in a worker thread."""
    if k > services.settings.max_k:
        raise HTTPException(422, f"k: at most {services.settings.max_k}, got {k}")
    if explore > 0 and policy is None:
        raise HTTPException(422, f"policy: required when explore > 0 ({', '.join(PolicyName)})")
    result = await services.answers.recommend_async(user_id, k, exclude_seen, policy, explore)
    if result.history_length == 0 and services.settings.unknown_users == "404":
        raise HTTPException(404, f"user_id: no stored events of user '{user_id}' with items the model knows")
    services.metrics.recommendations.labels(result.loaded.retriever.kind).inc()
    roles = result.roles or [None] * len(result.items)
    shown: dict[str, int] = {}
    for role in roles:
        shown[role.role if role else "none"] = shown.get(role.role if role else "none", 0) + 1
    for name, n in shown.items():
        services.metrics.impressions.labels(policy.value if policy else "none", name).inc(n)
    # The hot path: a plain dict in the shape of RecommendationsOut (the documented response_model),
    # sent as is; building and re-validating pydantic models here costs more than the scoring does.
    return JSONResponse(
        {
            "request_id": result.request_id,
            "user_id": user_id,
            "items": [
                {
                    "item_id": r.item_id,
                    "score": r.score,
                    "title": r.title,
                    "role": role.role if role else None,
                    "interest": role.interest if role else None,
                    "propensity": role.propensity if role else 1.0,
                }
                for r, role in zip(result.items, roles, strict=True)
            ],
            "model": result.loaded.model_name,
            "retrieval": result.loaded.retriever.kind,
            "history_length": result.history_length,
            "exclude_seen": result.exclude_seen,
            "fallback": "popular" if result.history_length == 0 else None,
            "policy": policy.value if policy else None,
            "explore": explore,
        }
    )


@router.get(
    "/users/{user_id}/recommendations/{item_id}/explanation",
    response_model=ExplanationOut,
    dependencies=[CanRead],
    responses={
        404: {"model": ErrorOut, "description": "no stored events of the user, or an unknown item"},
        409: {"model": ErrorOut, "description": "the served run has no interests"},
    },
)
def explanation(
    services: ServicesDep,
    user_id: UserId,
    item_id: ItemId,
    top: Annotated[int, Query(ge=1, le=100, description="past items to list")] = 10,
) -> ExplanationOut:
    """Why the model scores the item as it does for the user: each past item's weight is the drop in
    the item's score when that one event is left out (occlusion, on the model itself), and each
    interest's weight the sum over its items."""
    return ExplanationOut.model_validate(services.answers.explain(user_id, item_id, top).to_dict())
