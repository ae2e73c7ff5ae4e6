from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from penchant.serve.deps import CanRead, ServicesDep
from penchant.serve.routes.params import UserId
from penchant.serve.schemas import RecommendationOut, RecommendationsOut

router = APIRouter(tags=["recommendations"])


@router.get("/users/{user_id}/recommendations", response_model=RecommendationsOut, dependencies=[CanRead])
def recommendations(
    services: ServicesDep,
    user_id: UserId,
    k: Annotated[int, Query(ge=1, description="how many items")] = 10,
    exclude_seen: Annotated[bool, Query(description="never recommend items the user already has")] = False,
) -> RecommendationsOut:
    """The top-k items for the user from everything stored about them, including events recorded a
    moment ago. A user with no events gets the most popular items."""
    if k > services.settings.max_k:
        raise HTTPException(422, f"k: at most {services.settings.max_k}, got {k}")
    result = services.models.recommend(user_id, k, exclude_seen)
    services.metrics.recommendations.labels(result.loaded.retriever.kind).inc()
    return RecommendationsOut(
        user_id=user_id,
        items=[RecommendationOut(item_id=r.item_id, score=r.score, title=r.title) for r in result.items],
        model=result.loaded.model_name,
        retrieval=result.loaded.retriever.kind,
        history_length=result.history_length,
        exclude_seen=exclude_seen,
    )
