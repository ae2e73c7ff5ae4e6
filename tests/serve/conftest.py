"""Service fixtures: small runs trained once, SQLite files and a real PostgreSQL server started once."""

import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from penchant.data.dataset import Dataset
from penchant.data.split import Protocol
from penchant.models import EASE, InterestTransformer, TransformerConfig
from penchant.runs import train_run
from penchant.serve import Settings, create_app
from tests.servers import TemporaryPostgres, find_pg_bin

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Transformer settings that learn the 20-item cycle in a few seconds (see tests/models).
SMALL_TRANSFORMER = dict(dim=32, max_len=20, batch_size=32, threads=1, lr=3e-3, max_epochs=10, seed=0)


@pytest.fixture(scope="session")
def ease_run(tmp_path_factory, make_cycle_dataset) -> Path:
    directory = tmp_path_factory.mktemp("ease-run")
    train_run(make_cycle_dataset(), EASE(), directory, Protocol(), progress=False)
    return directory


GENRES = ["Action", "Comedy", "Drama", "Sci-Fi"]


def genres_of(item_id: str) -> list[str]:
    """Five consecutive cycle items per genre; the last of each five also has the next genre."""
    position = int(item_id[1:])
    first = GENRES[position // 5 % len(GENRES)]
    return [first, GENRES[(position // 5 + 1) % len(GENRES)]] if position % 5 == 4 else [first]


def with_genres(dataset: Dataset) -> Dataset:
    """The cycle dataset with item categories, so that the service has interests to serve."""
    items = dataset.items.reset_index()
    items["categories"] = [genres_of(i) for i in items["item_id"]]
    events = dataset.events[["user_id", "item_id", "timestamp"]]
    return Dataset.from_frames(events, items, name=dataset.name)


@pytest.fixture(scope="session")
def genres() -> list[str]:
    """The interests of ``transformer_run``'s catalogue."""
    return GENRES


@pytest.fixture(scope="session")
def transformer_run(tmp_path_factory, make_cycle_dataset) -> Path:
    """The transformer on the cycle with genres: the run the interest endpoints and dashboard use.
    ID-only, so items posted to /items stay unknown to it (``text_run`` is the one that adds them)."""
    directory = tmp_path_factory.mktemp("transformer-run")
    model = InterestTransformer(TransformerConfig(**SMALL_TRANSFORMER, item_repr="id"))
    train_run(with_genres(make_cycle_dataset()), model, directory, Protocol(), progress=False)
    return directory


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the whole session; each test gets its own database in it."""
    if find_pg_bin() is None:
        if IN_CI:
            pytest.fail("PostgreSQL server binaries are missing in CI (make test installs postgresql)")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty event store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite3'}"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def serve(db_url):
    """``serve(run_dir, **settings)`` -> a started TestClient (open access unless told otherwise)."""
    clients = []

    def start(run_dir: Path, **overrides) -> TestClient:
        settings = Settings(
            run_dir=run_dir,
            db_url=overrides.pop("db_url", db_url),
            open_access=overrides.pop("open_access", True),
            **overrides,
        )
        # A loopback base URL: an open server refuses any other Host header.
        client = TestClient(create_app(settings), base_url="http://127.0.0.1", raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


SCIFI = ["Star Voyager", "Galactic War", "Mars Colony", "Alien Invasion", "Robot Uprising", "Warp Drive"]
ROMANCE = ["Love in Paris", "Wedding Season", "Summer Romance", "The Kiss", "Sweethearts", "First Date"]
GENRE_TEXT = {
    "s": "A science fiction adventure in outer space with spaceships and aliens.",
    "r": "A romantic love story about a couple, a kiss and a wedding.",
}


def text_dataset(n_users: int = 30, length: int = 10, seed: int = 0) -> Dataset:
    """Each user sticks to one genre (sci-fi for even users, romance for odd); items have titles,
    descriptions and a category, so a text model can score new items and the service has interests."""
    import numpy as np
    import pandas as pd

    rows = [(f"s{i}", t, GENRE_TEXT["s"], ["Sci-Fi"]) for i, t in enumerate(SCIFI)]
    rows += [(f"r{i}", t, GENRE_TEXT["r"], ["Romance"]) for i, t in enumerate(ROMANCE)]
    items = pd.DataFrame(rows, columns=["item_id", "title", "description", "categories"])
    rng = np.random.default_rng(seed)
    events = [
        (f"u{u:02d}", f"{'s' if u % 2 == 0 else 'r'}{i}", 1_600_000_000 + 3600 * u + 60 * step)
        for u in range(n_users)
        for step, i in enumerate(rng.choice(len(SCIFI), size=length))
    ]
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_frames(frame, items, name="genres")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory) -> Path:
    """A text-only transformer (items scored by their encoded text): it can add items when serving."""
    directory = tmp_path_factory.mktemp("text-run")
    config = TransformerConfig(
        item_repr="text", dim=32, layers=1, max_len=20, max_epochs=3, threads=1, seed=0
    )
    train_run(text_dataset(), InterestTransformer(config), directory, Protocol(), progress=False)
    return directory


@pytest.fixture(scope="session")
def topics_run(tmp_path_factory) -> Path:
    """EASE on the sci-fi/romance catalogue with titles and descriptions but no categories: the
    service's interests are topics clustered from the item text."""
    directory = tmp_path_factory.mktemp("topics-run")
    data = text_dataset()
    items = data.items.reset_index().drop(columns="categories")
    plain = Dataset.from_frames(data.events[["user_id", "item_id", "timestamp"]].copy(), items, name="plain")
    train_run(plain, EASE(), directory, Protocol(), progress=False)
    return directory
