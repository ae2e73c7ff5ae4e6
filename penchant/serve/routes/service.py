from fastapi import APIRouter, Response

from penchant.serve.deps import CanAdmin, CanRead, OptionalKey, ServicesDep, scope_of
from penchant.serve.metrics import CONTENT_TYPE
from penchant.serve.schemas import Health, Readiness, Reloaded

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health, response_model_exclude_none=True)
async def health(services: ServicesDep, key: OptionalKey) -> Health:
    """Liveness: the process answers. No key needed; without one (when the service has keys) it says
    only that and whether keys are required: the model, its catalogue size and retrieval are for a
    caller with a valid key. No database round trip for a known key (answered on the event loop)."""
    auth = "keys" if services.settings.auth_required else "open"
    if services.settings.auth_required and await scope_of(services, key) is None:
        return Health(status="ok", auth=auth)
    loaded = services.models.current
    return Health(
        status="ok",
        model=loaded.model_name,
        run=services.settings.run_dir.name,  # the name only: no path on the server
        items=loaded.run.model.n_items,
        retrieval=loaded.retriever.kind,
        auth=auth,
        erased_users_in_weights=loaded.run.erased_in_weights(),
    )


@router.get(
    "/health/ready", response_model=Readiness, responses={503: {"description": "the database is unreachable"}}
)
def ready(services: ServicesDep) -> Readiness:
    """Readiness: the database answers. No key needed, so it names the database's kind only (sqlite
    or postgresql), never its URL."""
    version = services.db.version()
    return Readiness(status="ok", database=services.db.dialect, schema_version=version)


@router.get(
    "/metrics",
    dependencies=[CanRead],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


@router.post("/admin/reload", response_model=Reloaded, dependencies=[CanAdmin])
def reload(services: ServicesDep) -> Reloaded:
    """Load the run directory again (a newer run written there) and serve it; requests keep being
    answered by the old model until the new one is ready."""
    loaded = services.reload()
    return Reloaded(
        model=loaded.model_name,
        run=str(services.settings.run_dir),
        retrieval=loaded.retriever.kind,
        loaded_at=loaded.loaded_at,
    )
