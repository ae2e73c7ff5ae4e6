"""`penchant profile`, `penchant explain` and `penchant evaluate --task next-interest` on small saved runs."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from penchant.cli.main import main
from penchant.data.dataset import Dataset
from penchant.models import EASE
from penchant.runs import train_run

GENRES = ["Alpha", "Beta", "Gamma"]


def genre_dataset() -> Dataset:
    """Eight items per genre; most users stay in one genre, user 'shift' moves from Alpha to Beta."""
    rng = np.random.default_rng(0)
    items = [(f"{g[0].lower()}{n}", g) for g in GENRES for n in range(8)]
    by_genre = {g: [i for i, gg in items if gg == g] for g in GENRES}
    rows = []
    for u in range(24):
        g = GENRES[u % 3]
        for s, item in enumerate(rng.permutation(by_genre[g])[:6]):
            rows.append((f"u{u}", item, 1_600_000_000 + 3600 * u + 60 * s))
    t0 = 1_700_000_000
    shift = [by_genre["Alpha"][s % 8] for s in range(16)] + [by_genre["Beta"][s % 8] for s in range(8)]
    rows += [("shift", item, t0 + 60 * s) for s, item in enumerate(shift)]
    catalogue = pd.DataFrame(
        {
            "item_id": [i for i, _ in items],
            "title": [f"Film {i}" for i, _ in items],
            "categories": [[g] for _, g in items],
        }
    )
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), catalogue)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("interests") / "run"
    train_run(genre_dataset(), EASE(), directory, progress=False)
    return directory


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_profile_json_and_plot(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PENCHANT_LLM_URL", raising=False)
    png = tmp_path / "shift.png"
    code, out, _ = call(
        capsys,
        "profile",
        "--run",
        str(run_dir),
        "--user",
        "shift",
        "--short-events",
        "8",
        "--json",
        "--plot",
        str(png),
    )
    assert code == 0
    profile = json.loads(out)
    assert {"user_id", "long_term", "short_term", "emerging", "fading", "summary"} <= set(profile)
    assert profile["user_id"] == "shift"
    assert [w["interest"] for w in profile["short_term"]] == ["Beta"]
    assert [e["interest"] for e in profile["emerging"]] == ["Beta"]
    assert [f["interest"] for f in profile["fading"]] == ["Alpha"]
    assert profile["summary_source"] == "deterministic" and "Emerging: Beta" in profile["summary"]
    with Image.open(png) as image:
        assert image.format == "PNG"


def test_profile_says_when_the_language_model_failed(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("PENCHANT_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PENCHANT_LLM_MODEL", "any")
    code, out, err = call(capsys, "profile", "--run", str(run_dir), "--user", "u1", "--json")
    assert code == 0
    profile = json.loads(out)
    assert (
        profile["summary_source"] == "deterministic"
        and "deterministic summary used" in profile["summary_note"]
    )
    assert "note:" in err


def test_explain_json(run_dir, capsys):
    code, out, _ = call(
        capsys, "explain", "--run", str(run_dir), "--user", "u1", "--item", "b7", "--top", "3", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["item_id"] == "b7" and result["user_id"] == "u1" and len(result["items"]) == 3
    weights = [c["weight"] for c in result["items"]]
    assert weights == sorted(weights, reverse=True)
    # u1 only ever watched Beta films, so Beta is the interest behind a Beta film.
    assert result["interests"][0]["interest"] == "Beta"


def test_evaluate_next_interest_json(run_dir, capsys):
    code, out, _ = call(
        capsys, "evaluate", "--run", str(run_dir), "--task", "next-interest", "--k", "1", "2", "--json"
    )
    assert code == 0
    result = json.loads(out)
    names = {f"{m}@{k}" for m in ("precision", "recall", "f1") for k in (1, 2)}
    assert set(result["metrics"]) == names and set(result["baseline"]) == names
    assert result["protocol"]["name"] == "leave-one-out" and result["n_users"] == 25
    # Single-genre users: the history's genre is the next genre, and the model knows it too.
    assert result["baseline"]["precision@1"] >= 0.95 and result["metrics"]["precision@1"] >= 0.9


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["profile", "--user", "nobody", "--json"], "unknown user 'nobody'"),
        (["explain", "--user", "nobody", "--item", "a1"], "unknown user 'nobody'"),
        (["explain", "--user", "u1", "--item", "zz"], "unknown item 'zz'"),
        (["evaluate", "--task", "next-interest", "--k", "4"], "more than the 3 interests"),
        (["evaluate", "--task", "next-interest", "--protocol", "temporal"], "not 'temporal'"),
        (["evaluate", "--task", "next-interest", "--explore", "0.5"], "do not apply"),
    ],
)
def test_bad_input_is_one_line(run_dir, capsys, args, fragment):
    code, _, err = call(capsys, args[0], "--run", str(run_dir), *args[1:])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
