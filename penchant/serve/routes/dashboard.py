from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    """The dashboard page; its script and style come from /static (package data, no CDN)."""
    return HTMLResponse(
        resources.files("penchant.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    )
