"""Path and query parameters shared by routes, validated like request bodies."""

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator

from penchant.serve.schemas import external_id

UserId = Annotated[
    str, Path(min_length=1, max_length=256, description="the user's external ID"), AfterValidator(external_id)
]
ItemId = Annotated[
    str, Path(min_length=1, max_length=256, description="the item's external ID"), AfterValidator(external_id)
]
