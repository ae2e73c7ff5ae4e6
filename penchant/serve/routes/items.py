from fastapi import APIRouter, HTTPException, Response

from penchant.serve.deps import CanAdmin, CanRead, ServicesDep
from penchant.serve.routes.params import ItemId
from penchant.serve.schemas import ItemIn, ItemOut
from penchant.serve.store import Item

router = APIRouter(tags=["items"])


@router.post(
    "/items",
    response_model=ItemOut,
    status_code=201,
    dependencies=[CanAdmin],
    responses={200: {"description": "the item existed and was updated", "model": ItemOut}},
)
def put_item(services: ServicesDep, item: ItemIn, response: Response) -> ItemOut:
    """Add an item to the catalogue (201), or replace a stored item's fields (200). Events may name it
    at once. A served transformer with item text (item_repr "text" or "fused") scores a new item by
    its text from this response on; other models cannot recommend it until retrained (see
    ``recommendable``)."""
    stored = Item(item.item_id, item.title, item.description, item.categories)
    created = services.store.put_item(stored)
    if not created:
        response.status_code = 200
    services.add_item(stored)
    return _out(services, services.store.get_item(item.item_id))


@router.get("/items/{item_id}", response_model=ItemOut, dependencies=[CanRead])
def get_item(services: ServicesDep, item_id: ItemId) -> ItemOut:
    item = services.store.get_item(item_id)
    if item is None:
        raise HTTPException(404, f"item_id: no item '{item_id}' in the catalogue")
    return _out(services, item)


def _out(services, item: Item) -> ItemOut:
    model = services.models.current.run.model
    return ItemOut(
        item_id=item.item_id,
        title=item.title,
        description=item.description,
        categories=item.categories,
        recommendable=item.item_id in model.item_map,
    )
