"""POST /items: a new item with text is recommendable at once by a text-capable transformer, with the
retriever, the user-state cache and the interests all grown to the new catalogue; other models store
it and say it is not recommendable."""

import math

import numpy as np
import pytest

NEW = {
    "item_id": "s-new",
    "title": "Star Voyager Returns",
    "description": "A science fiction adventure in outer space with spaceships and aliens.",
    "categories": ["Sci-Fi"],
}


def scores(client, user_id: str, k: int, **params) -> dict[str, float]:
    # Users of the cycle have seen most of its items: keep them in unless a test says otherwise.
    response = client.get(
        f"/users/{user_id}/recommendations", params={"k": k, "exclude_seen": False, **params}
    )
    assert response.status_code == 200, response.text
    return {r["item_id"]: r["score"] for r in response.json()["items"]}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("ann_threshold", [50_000, 1], ids=["exact", "ann"])
def test_a_new_item_with_text_is_recommended_at_once(serve, text_run, ann_threshold):
    client = serve(text_run, ann_threshold=ann_threshold)
    n = 12  # the catalogue: 6 sci-fi and 6 romance items
    before = scores(client, "u00", n)  # a sci-fi fan, state cached for the old catalogue
    assert "s-new" not in before and len(before) == n

    old = client.app.state.services.models.current.retriever
    response = client.post("/items", json=NEW)
    assert response.status_code == 201 and response.json()["recommendable"] is True
    assert client.get("/items/s-new").json()["recommendable"] is True
    if ann_threshold == 1:  # the index is shared and the new item scored beside it; the old one is untouched
        grown = client.app.state.services.models.current.retriever
        assert grown.index is old.index and (old.n_items, grown.n_items) == (n, n + 1)
        assert np.array_equal(grown.vectors, old.vectors) and len(old.recent) == 0

    after = scores(client, "u00", n + 1)
    assert len(after) == n + 1 and math.isfinite(after["s-new"])
    # Scored by its text, close to the sci-fi items the user likes: above every romance item.
    assert after["s-new"] > max(s for i, s in after.items() if i.startswith("r"))
    assert scores(client, "u01", n + 1).keys() == after.keys()  # other users, other states
    assert len(scores(client, "nobody", 5)) == 5  # no events: the popular items

    # Events may name it, and the interest capabilities know its category.
    event = {"user_id": "u00", "item_id": "s-new", "timestamp": 1_700_000_000}
    assert client.post("/events", json=event).status_code in (200, 201, 202)
    assert "s-new" in scores(client, "u00", n + 1)
    for policy in ("diversity", "calibrated", "novel-interest", "bandit"):
        assert len(scores(client, "u01", n + 1, policy=policy, explore=0.5)) == n + 1
    profile = client.get("/users/u00/profile")
    assert profile.status_code == 200, profile.text
    explanation = client.get("/users/u00/recommendations/s-new/explanation")
    assert explanation.status_code == 200, explanation.text

    # Updating it again changes nothing in the model; a reload keeps it (it is in the store).
    assert client.post("/items", json={**NEW, "title": "Star Voyager Returns Again"}).status_code == 200
    assert client.post("/admin/reload").status_code == 200
    assert client.get("/items/s-new").json()["recommendable"] is True
    assert math.isfinite(scores(client, "u00", n + 1)["s-new"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_new_item_is_stored_but_not_recommendable_by_models_without_text(serve, ease_run):
    client = serve(ease_run)
    response = client.post("/items", json={"item_id": "brand-new", "title": "Brand New"})
    assert response.status_code == 201 and response.json()["recommendable"] is False
    assert client.get("/items/brand-new").json()["recommendable"] is False
    recommended = scores(client, "u000", 20)
    assert "brand-new" not in recommended and len(recommended) == 20


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_items_added_while_recommending_never_fail_a_request(serve, text_run):
    import threading

    client = serve(text_run)
    statuses: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for user in ("u00", "u01", "u02"):
                statuses.append(client.get(f"/users/{user}/recommendations", params={"k": 30}).status_code)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(5):
            item = {**NEW, "item_id": f"s-new-{i}", "title": f"Star Voyager {i}"}
            assert client.post("/items", json=item).json()["recommendable"] is True
    finally:
        done.set()
        reader.join()
    assert statuses and set(statuses) == {200}
    assert {f"s-new-{i}" for i in range(5)} <= scores(client, "u00", 17).keys()
