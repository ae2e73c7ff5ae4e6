"""Text and cold start through the command line (a real subprocess): --text-encoder, the cold-start
protocol with its random baseline, and `penchant items add`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.clitools import assert_one_line_error, penchant

GENRES = {
    "s": "Science fiction in outer space with spaceships and aliens.",
    "r": "A romantic love story about a couple and a wedding.",
    "h": "A horror film with ghosts, blood and a haunted house.",
    "c": "A cooking show about recipes, baking bread and cakes.",
}
# Text-only item vectors: every item, known or new, is scored the same way
# (see the README, "Text and cold start").
SMALL = (
    '{"dim": 32, "layers": 1, "max_len": 20, "max_epochs": 12, "lr": 0.003, "threads": 1, '
    '"item_repr": "text"}'
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Users who each stick to one of four genres, in a CSV; a catalogue with titles and descriptions."""
    folder = tmp_path_factory.mktemp("text-cli")
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u:03d}", f"{'srhc'[u % 4]}{int(i)}", 1_600_000_000 + 3600 * u + 60 * step)
        for u in range(120)
        for step, i in enumerate(rng.choice(15, size=15))
    ]
    pd.DataFrame(rows, columns=["user", "item", "ts"]).to_csv(folder / "events.csv", index=False)
    items = [
        {"item": f"{g}{i}", "name": f"Show {g}{i}", "about": about}
        for g, about in GENRES.items()
        for i in range(15)
    ]
    pd.DataFrame(items).to_csv(folder / "items.csv", index=False)
    new = [
        {
            "item": "s-new",
            "name": "Rocket to Jupiter",
            "about": "Astronauts fly a spaceship to another planet.",
        },
        {"item": "r-new", "name": "Love Letters", "about": "Two lovers write letters and marry."},
    ]
    with (folder / "new.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in new)
    return {
        "events": folder / "events.csv",
        "items": folder / "items.csv",
        "new": folder / "new.jsonl",
        "dir": folder,
    }


COLUMNS = [
    "--user-col",
    "user",
    "--item-col",
    "item",
    "--time-col",
    "ts",
    "--title-col",
    "name",
    "--description-col",
    "about",
]


@pytest.fixture(scope="module")
def cold_run(files) -> Path:
    out = files["dir"] / "run"
    result = penchant(
        "train",
        "--events",
        str(files["events"]),
        "--items",
        str(files["items"]),
        *COLUMNS,
        "--text-encoder",
        "minilm",
        "--protocol",
        "cold-start",
        "--config",
        SMALL,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_cold_start_evaluation_beats_its_random_baseline(cold_run):
    result = penchant("evaluate", "--run", str(cold_run), "--protocol", "cold-start", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["protocol"]["name"] == "cold-start"
    assert set(report["baseline"]) == set(report["metrics"])
    # Held-out items are scored by their text, which names the user's genre: far above chance.
    assert report["metrics"]["hr@10"] >= 2 * report["baseline"]["hr@10"] > 0
    config = json.loads((cold_run / "run.json").read_text())["config"]
    assert config["text_encoder"] == "minilm" and config["item_repr"] == "text"
    assert json.loads((cold_run / "model" / "network.json").read_text())["item_repr"] == "text"


def test_evaluating_under_another_protocol_is_refused(cold_run):
    assert_one_line_error(
        penchant("evaluate", "--run", str(cold_run), "--protocol", "leave-one-out"), "cold-start"
    )


def test_items_add_makes_new_items_recommendable_without_retraining(cold_run, files, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cold_run, run)
    weights = (run / "model" / "transformer.pt").stat().st_size
    result = penchant(
        "items",
        "add",
        "--run",
        str(run),
        "--items",
        str(files["new"]),
        "--item-col",
        "item",
        "--title-col",
        "name",
        "--description-col",
        "about",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"added": ["s-new", "r-new"], "n_items": 62}
    assert (run / "model" / "transformer.pt").stat().st_size > weights
    recs = json.loads(penchant("recommend", "--run", str(run), "--user", "u000", "-k", "62", "--json").stdout)
    order = [r["item_id"] for r in recs]
    assert order.index("s-new") < order.index("r-new"), order  # u000 watches science fiction
    assert {r["title"] for r in recs} >= {"Rocket to Jupiter", "Love Letters"}
    assert_one_line_error(
        penchant("items", "add", "--run", str(run), "--items", str(files["new"]), "--item-col", "item"),
        "'s-new' is already in the model's catalogue",
    )


def test_text_encoder_mistakes_are_one_line_errors(files, tmp_path):
    common = [
        "train",
        "--events",
        str(files["events"]),
        "--items",
        str(files["items"]),
        *COLUMNS,
        "--out",
        str(tmp_path / "x"),
    ]
    assert_one_line_error(penchant(*common, "--text-encoder", "gpt-17"), "gpt-17")
    assert_one_line_error(penchant(*common, "--text-encoder", "minilm", "--model", "ease"), "uses no text")
