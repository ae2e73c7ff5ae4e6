from fastapi import APIRouter

from penchant.serve.deps import CanRead, ServicesDep
from penchant.serve.routes.params import UserId
from penchant.serve.schemas import ErrorOut, ProfileOut

router = APIRouter(tags=["profiles"])


@router.get(
    "/users/{user_id}/profile",
    response_model=ProfileOut,
    dependencies=[CanRead],
    responses={
        404: {"model": ErrorOut, "description": "no stored events of the user"},
        409: {"model": ErrorOut, "description": "the served run has no interests"},
    },
)
def profile(services: ServicesDep, user_id: UserId) -> ProfileOut:
    """The user's interests, long term and short term, and which are emerging or fading, from every
    stored event including those recorded a moment ago."""
    return ProfileOut.model_validate(services.answers.profile(user_id).to_dict())
