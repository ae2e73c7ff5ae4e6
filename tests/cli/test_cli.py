"""The command line through a real subprocess: happy paths on own files, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.clitools import assert_one_line_error, files_naming, penchant


@pytest.fixture(scope="module")
def own_files(tmp_path_factory, make_cycle_dataset) -> dict[str, Path]:
    """A small shop-like event log in a CSV with its own column names, and a JSONL catalogue."""
    folder = tmp_path_factory.mktemp("own")
    data = make_cycle_dataset(n_users=40, n_items=15)
    events = data.events.rename(columns={"user_id": "visitor", "item_id": "sku", "timestamp": "ts"})
    events[["visitor", "sku", "ts"]].to_csv(folder / "clicks.csv", index=False)
    with (folder / "catalogue.jsonl").open("w") as handle:
        for item_id, row in data.items.iterrows():
            handle.write(json.dumps({"sku": item_id, "name": row["title"], "tags": ["a", "b"]}) + "\n")
    return {"events": folder / "clicks.csv", "items": folder / "catalogue.jsonl", "dir": folder}


OWN = ["--user-col", "visitor", "--item-col", "sku", "--time-col", "ts", "--title-col", "name"]
SMALL = '{"dim": 32, "layers": 1, "max_len": 20, "max_epochs": 5, "threads": 1}'


@pytest.fixture(scope="module")
def own_run(own_files) -> Path:
    out = own_files["dir"] / "run"
    result = penchant(
        "train",
        "--events",
        str(own_files["events"]),
        "--items",
        str(own_files["items"]),
        *OWN,
        "--categories-col",
        "tags",
        "--model",
        "transformer",
        "--config",
        SMALL,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "run saved to" in result.stderr
    return out


def test_train_evaluate_recommend_on_own_files(own_run):
    result = penchant("evaluate", "--run", str(own_run), "--k", "5", "10", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["protocol"]["name"] == "leave-one-out"
    assert report["protocol"]["exclude_seen"] is False
    assert report["protocol"]["ranking"] == "full catalogue"
    for name in ("ndcg@10", "hr@10", "mrr@10", "recall@5", "map@10", "coverage@10"):
        assert 0.0 <= report["metrics"][name] <= 1.0
    assert report["n_users"] == 40

    excluded = json.loads(penchant("evaluate", "--run", str(own_run), "--exclude-seen", "--json").stdout)
    assert excluded["protocol"]["exclude_seen"] is True

    recs = penchant("recommend", "--run", str(own_run), "--user", "u000", "-k", "3", "--json")
    assert recs.returncode == 0, recs.stderr
    items = json.loads(recs.stdout)
    assert len(items) == 3
    assert set(items[0]) == {"item_id", "score", "title"}
    assert items[0]["title"].startswith("Title ")
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)


def test_evaluate_without_json_prints_the_protocol(own_run):
    result = penchant("evaluate", "--run", str(own_run))
    assert result.returncode == 0, result.stderr
    assert "protocol: leave-one-out" in result.stdout
    assert "NOT excluded" in result.stdout


def test_evaluate_on_a_sample_of_users_says_so(own_run):
    """--users N ranks a seeded sample of the test users: the same sample each time, named in the
    protocol (JSON and the printed line)."""
    runs = [
        json.loads(penchant("evaluate", "--run", str(own_run), "--users", "9", "--json").stdout) for _ in "ab"
    ]
    everyone = json.loads(penchant("evaluate", "--run", str(own_run), "--json").stdout)

    assert runs[0]["n_users"] == 9 and everyone["n_users"] == 40
    assert runs[0]["protocol"]["users"] == "a seeded sample of 9 of the 40 test users"
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert "users" not in everyone["protocol"]
    printed = penchant("evaluate", "--run", str(own_run), "--users", "9").stdout
    assert "on a seeded sample of 9 of the 40 test users" in " ".join(printed.split())


def test_cleaning_is_reported(own_files, tmp_path):
    events = own_files["events"].read_text().splitlines()
    duplicated = "\n".join(events + events[1:4] + ["u001,,120"]) + "\n"
    path = tmp_path / "dup.csv"
    path.write_text(duplicated)
    result = penchant(
        "train", "--events", str(path), *OWN[:6], "--model", "popularity", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    assert "dropped 3 duplicate events" in result.stderr
    assert "dropped 1 events with no item_id" in result.stderr


@pytest.mark.parametrize("name", ["events.csv", "events.parquet", "events.jsonl"])
def test_every_format_trains(own_files, tmp_path, name):
    import pandas as pd

    frame = pd.read_csv(own_files["events"], dtype=str)
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    result = penchant(
        "train", "--events", str(path), *OWN[:6], "--model", "ease", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr


def test_missing_file(tmp_path):
    result = penchant("train", "--events", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "nope.csv", "not found")


def test_wrong_column(own_files, tmp_path):
    result = penchant(
        "train", "--events", str(own_files["events"]), "--user-col", "customer", "--out", str(tmp_path / "r")
    )
    assert_one_line_error(result, "clicks.csv", "missing column 'customer'", "visitor")


def test_malformed_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,100\nu1,i2,yesterday\n")
    result = penchant("train", "--events", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "bad.csv", "line 3", "column 'timestamp'", "yesterday")


def test_ragged_row(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,100\nu1,i2,200,extra\n")
    result = penchant("train", "--events", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "ragged.csv", "line 3")


def test_malformed_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n{"user_id": "u1", \n')
    result = penchant("train", "--events", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "bad.jsonl", "line 2", "not valid JSON")


def test_unknown_user(own_run):
    # As the API answers: the most popular items, and a note saying why; or, when asked, an error.
    result = penchant("recommend", "--run", str(own_run), "--user", "u-999", "--json")
    assert result.returncode == 0 and len(json.loads(result.stdout)) > 0
    assert "user 'u-999' has no events in the run: the most popular items" in result.stderr
    result = penchant("recommend", "--run", str(own_run), "--user", "u-999", "--unknown-user", "error")
    assert_one_line_error(result, "unknown user 'u-999'")


def test_not_a_run_directory(tmp_path):
    assert_one_line_error(penchant("evaluate", "--run", str(tmp_path)), str(tmp_path), "run.json")


def test_bad_config_and_model(own_files, tmp_path):
    base = ["train", "--events", str(own_files["events"]), *OWN[:6], "--out", str(tmp_path / "r")]
    assert_one_line_error(penchant(*base, "--model", "magic"), "unknown model 'magic'")
    assert_one_line_error(penchant(*base, "--config", "{not json"), "--config", "not valid JSON")
    assert_one_line_error(penchant(*base, "--config", '{"depth": 3}'), "unknown setting(s) depth")


def test_bad_k_is_a_usage_error(own_run):
    result = penchant("recommend", "--run", str(own_run), "--user", "u000", "-k", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "must be at least 1" in result.stderr


def test_a_budget_that_cuts_training_short_is_reported_everywhere(own_files, tmp_path):
    out = tmp_path / "cut"
    config = '{"dim": 16, "layers": 1, "max_epochs": 2, "threads": 1}'
    base = ["train", "--events", str(own_files["events"]), *OWN[:6], "--config", config]
    result = penchant(*base, "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "ended by epoch budget" in result.stderr and "s per epoch" in result.stderr
    assert "warning: training was stopped by its epoch budget after 2 epochs" in " ".join(
        result.stderr.split()
    )
    fit = json.loads((out / "run.json").read_text())["fit"]
    assert fit["stopped_by"] == "epoch budget" and fit["still_improving"] is True
    assert len(fit["epoch_seconds"]) == 2 and fit["settings"]["device"] == "cpu"
    table = penchant("evaluate", "--run", str(out))
    assert "note: training was stopped by its epoch budget" in " ".join(table.stdout.split())
    report = json.loads(penchant("evaluate", "--run", str(out), "--json").stdout)
    assert report["training"]["stopped_by"] == "epoch budget" and "undertrained" in report["training"]["note"]


def test_without_a_budget_training_ends_by_early_stopping(own_files, tmp_path):
    out = tmp_path / "converged"
    config = '{"dim": 16, "layers": 1, "patience": 2, "threads": 1}'
    base = ["train", "--events", str(own_files["events"]), *OWN[:6], "--config", config, "--out", str(out)]
    result = penchant(*base)
    assert result.returncode == 0, result.stderr
    assert "ended by early stopping" in result.stderr and "warning" not in result.stderr
    report = json.loads(penchant("evaluate", "--run", str(out), "--json").stdout)
    assert report["training"]["stopped_by"] == "early stopping" and "note" not in report["training"]


def test_a_device_this_machine_lacks_is_one_line(own_files, own_run, tmp_path):
    base = ["train", "--events", str(own_files["events"]), *OWN[:6], "--out", str(tmp_path / "r")]
    assert_one_line_error(penchant(*base, "--device", "tpu"), "unknown device 'tpu'")
    import torch

    if not torch.cuda.is_available():
        assert_one_line_error(penchant(*base, "--device", "cuda"), "no CUDA device")
        assert_one_line_error(
            penchant("recommend", "--run", str(own_run), "--user", "u000", "--device", "cuda:1"), "CUDA"
        )
    recs = penchant("recommend", "--run", str(own_run), "--user", "u000", "--device", "cpu", "--json")
    assert recs.returncode == 0, recs.stderr


def test_bad_config_values_are_one_line(own_files, tmp_path):
    base = ["train", "--events", str(own_files["events"]), *OWN[:6], "--out", str(tmp_path / "r")]
    for config, fragment in (
        ('{"max_epochs": "20"}', "max_epochs"),
        ('{"heads": 3}', "heads"),
        ('{"batch_size": 0}', "batch_size"),
        ('{"dropout": 2}', "dropout"),
    ):
        assert_one_line_error(penchant(*base, "--config", config), fragment)


def test_a_file_with_another_delimiter_is_named_and_read_with_sep(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(
        "userId;movieId;timestamp\nu1;i1;100\nu1;i2;200\nu1;i3;250\nu2;i1;300\nu2;i3;400\nu2;i2;500\n"
    )
    base = [
        "train",
        "--events",
        str(path),
        "--user-col",
        "userId",
        "--item-col",
        "movieId",
        "--model",
        "popularity",
    ]
    result = penchant(*base, "--out", str(tmp_path / "r"))
    assert_one_line_error(
        result, "ratings.csv", "missing column 'userId'", "looks ';'-separated", "--sep ';'"
    )
    result = penchant(*base, "--sep", ";", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    result = penchant(*base, "--sep", ";;", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "one character" in result.stderr


def test_recommend_leaves_seen_items_out_where_people_do_not_come_back(tmp_path):
    path = tmp_path / "views.csv"
    rows = [f"u{u},i{(u + s) % 8},{100 * s}" for u in range(6) for s in range(5)]
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert (
        penchant("train", "--events", str(path), "--model", "popularity", "--out", str(run)).returncode == 0
    )
    decision = json.loads((run / "run.json").read_text())["seen_items"]
    assert decision["repeat_share"] == 0.0 and decision["excluded_by_default"] is True
    seen = {f"i{s % 8}" for s in range(5)}  # u0's items

    def recommended(*flags):
        result = penchant("recommend", "--run", str(run), "--user", "u0", "-k", "8", "--json", *flags)
        assert result.returncode == 0, result.stderr
        return {r["item_id"] for r in json.loads(result.stdout)}

    assert not recommended() & seen
    assert recommended("--include-seen") >= seen
    assert not recommended("--exclude-seen") & seen
    both = penchant("recommend", "--run", str(run), "--user", "u0", "--include-seen", "--exclude-seen")
    assert both.returncode == 2


def test_filters_from_the_command_line_are_applied_reported_and_recorded(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = [f"u{u},i{(u + s) % 6},{100 * s},{1 + (u + s) % 5}" for u in range(8) for s in range(4)]
    rows.append("loner,i0,50,5")
    path.write_text("user_id,item_id,timestamp,rating\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    result = penchant(
        "train", "--events", str(path), "--value-col", "rating", "--positive", "value>=3",
        "--min-user-events", "2", "--model", "popularity", "--out", str(run),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "positive events (value>=3): kept" in result.stderr and "k-core" in result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["source"]["filters"] == {"min_user_events": 2, "min_item_events": 0, "positive": "value>=3"}
    events = pd.read_parquet(run / "data" / "events.parquet")
    assert events["value"].min() >= 3 and "loner" not in set(events["user_id"])
    bad = penchant("train", "--events", str(path), "--positive", "stars>3", "--out", str(tmp_path / "r2"))
    assert_one_line_error(bad, "--positive", "stars>3")


def test_train_resume_retrains_a_run_from_its_own_data_after_an_erasure(own_run, tmp_path):
    """After forget, the weights still owe something to the erased user (erased.json counts them);
    train --resume trains the same model and settings from fresh weights on the run's current data,
    replaces the run whole, and the count is gone."""
    import json

    from penchant.runs import load_run

    run_dir = tmp_path / "run"
    shutil.copytree(own_run, run_dir)
    assert penchant("forget", "--run", str(run_dir), "--user", "u001").returncode == 0
    assert load_run(run_dir).erased_in_weights() == 1
    before = json.loads((run_dir / "run.json").read_text())
    done = penchant("train", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "trained again from its own data" in done.stderr
    run = load_run(run_dir)
    after = json.loads((run_dir / "run.json").read_text())
    assert run.erased_in_weights() == 0 and "u001" not in run.model.histories
    assert after["config"] == before["config"] and after["model"] == before["model"]
    assert after["source"]["retrained_from"] == before["created"]
    assert after["dataset"]["n_events"] < before["dataset"]["n_events"]
    assert not list(tmp_path.glob("run.*"))  # no half-written or replaced copy left beside it
    assert_one_line_error(
        penchant("train", "--resume", str(run_dir), "--config", "{}"), "--resume", "--config"
    )
    assert_one_line_error(penchant("train", "--resume", str(tmp_path / "nowhere")), "run.json missing")
    assert_one_line_error(penchant("train", "--data", "ml-100k"), "--out: required")


def test_an_unexpected_failure_is_one_line_asking_for_a_report(own_run, tmp_path):
    # A run directory whose model file is corrupt is not a mistake the CLI knows how to name: it must
    # still not print a traceback.
    broken = tmp_path / "run"
    shutil.copytree(own_run, broken)
    (broken / "model" / "popularity.npy").write_bytes(b"not numpy")
    result = penchant("recommend", "--run", str(broken), "--user", "u1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error in 'penchant recommend'")
    assert "please report it" in lines[0]


def test_forget_erases_a_user_from_the_run_and_its_event_store(own_run, tmp_path):
    from penchant.runs import load_run
    from penchant.serve.db import Database
    from penchant.serve.settings import default_db_url
    from penchant.serve.store import EventStore

    run_dir = tmp_path / "run"
    shutil.copytree(own_run, run_dir)  # forget rewrites the run: not the shared one
    user = "u001"

    assert files_naming(run_dir, user)  # data/events.parquet and model/histories.parquet
    done = penchant("forget", "--run", str(run_dir), "--user", user)
    assert done.returncode == 0, done.stderr
    assert f"forgot user {user}:" in done.stderr and "no event store found" in done.stderr
    assert files_naming(run_dir, user) == [] and user not in load_run(run_dir).model.histories

    # With the run's event store (as penchant serve made it), the stored events go too, for good.
    run = load_run(run_dir)
    db = Database(default_db_url(run_dir), pool_size=1)
    db.migrate()
    EventStore(db).import_run("k1", str(run_dir), run.dataset.events, run.dataset.items)
    other = "u002"
    stored = EventStore(db).history_version(other)[0]
    assert stored > 0
    done = penchant("forget", "--run", str(run_dir), "--user", other)
    assert done.returncode == 0, done.stderr
    assert f"{stored} from the event store" in done.stderr
    assert EventStore(db).history_version(other)[0] == 0
    db.close()
    assert_one_line_error(penchant("forget", "--run", str(tmp_path / "nowhere"), "--user", user), "nowhere")


# Every command fed bad settings and inputs: each is exit status 2 and one line naming what is wrong.
# {run}: a trained run; {events}/{items}: its files; {tmp}: an empty folder. In-process (no start-up
# cost per row); test_bad_config_values_are_one_line and the rest above run the real executable.
BAD = [
    # train
    (["train", "--out", "{tmp}/r"], "--data, --events"),
    (["train", "--data", "ml-1m", "--out", "{tmp}/r"], "ml-1m"),
    (["train", "--events", "{tmp}/missing.csv", "--out", "{tmp}/r"], "missing.csv"),
    (["train", "--events", "{events}", "--out", "{tmp}/r"], "user"),
    (["train", "--events", "{events}", *OWN[:4], "--time-col", "when", "--out", "{tmp}/r"], "when"),
    (["train", "--events", "{events}", *OWN[:6], "--config", "not json", "--out", "{tmp}/r"], "--config"),
    (["train", "--events", "{events}", *OWN[:6], "--config", '{"bogus": 1}', "--out", "{tmp}/r"], "bogus"),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"max_epochs": "20"}', "--out", "{tmp}/r"],
        "max_epochs",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--config", '{"heads": 3}', "--out", "{tmp}/r"], "heads"),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"batch_size": 0}', "--out", "{tmp}/r"],
        "batch_size",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"dropout": 2}', "--out", "{tmp}/r"],
        "dropout",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"negatives": 0}', "--out", "{tmp}/r"],
        "negatives",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"loss": "hinge"}', "--out", "{tmp}/r"],
        "loss",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"patience_steps": -1}', "--out", "{tmp}/r"],
        "patience_steps",
    ),
    (
        [
            "train",
            "--events",
            "{events}",
            *OWN[:6],
            "--config",
            '{"popular_negatives": 1.5}',
            "--out",
            "{tmp}/r",
        ],
        "popular_negatives",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--model", "bpr", "--out", "{tmp}/r"], "bpr"),
    (["train", "--events", "{events}", *OWN[:6], "--dp-epsilon", "0", "--out", "{tmp}/r"], "--dp-epsilon"),
    (["train", "--events", "{events}", *OWN[:6], "--dp-epsilon", "inf", "--out", "{tmp}/r"], "--dp-epsilon"),
    (
        [
            "train",
            "--events",
            "{events}",
            *OWN[:6],
            "--model",
            "ease",
            "--dp-epsilon",
            "8",
            "--out",
            "{tmp}/r",
        ],
        "ease",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--dp-delta", "1e-5", "--out", "{tmp}/r"], "--dp-epsilon"),
    (
        [
            "train",
            "--events",
            "{events}",
            *OWN[:6],
            "--dp-epsilon",
            "8",
            "--dp-delta",
            "2",
            "--out",
            "{tmp}/r",
        ],
        "dp_delta",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--config", '{"dp_clip": 0}', "--out", "{tmp}/r"],
        "dp_clip",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--protocol", "random", "--out", "{tmp}/r"], "random"),
    (
        ["train", "--events", "{events}", *OWN[:6], "--min-user-events", "-3", "--out", "{tmp}/r"],
        "min-user-events",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--positive", "value>>3", "--out", "{tmp}/r"], "--positive"),
    (["train", "--events", "{events}", *OWN[:6], "--sep", ";;", "--out", "{tmp}/r"], "--sep"),
    (
        ["train", "--events", "{events}", *OWN[:6], "--items", "{tmp}/none.jsonl", "--out", "{tmp}/r"],
        "none.jsonl",
    ),
    (["train", "--events", "{events}", *OWN[:6], "--device", "cuda:7", "--out", "{tmp}/r"], "cuda:7"),
    (["train", "--events-sql", "SELECT 1", "--out", "{tmp}/r"], "--source-db"),
    (
        ["train", "--events-sql", "SELECT 1", "--source-db", "sqlite:///{tmp}/none.db", "--out", "{tmp}/r"],
        "none.db",
    ),
    (
        ["train", "--events", "{events}", *OWN[:6], "--source-db", "sqlite:///x.db", "--out", "{tmp}/r"],
        "--events-sql",
    ),
    # evaluate
    (["evaluate", "--run", "{tmp}/nowhere"], "nowhere"),
    (["evaluate", "--run", "{tmp}"], "not a penchant run"),
    (["evaluate", "--run", "{run}", "--protocol", "cold-start"], "cold-start"),
    (["evaluate", "--run", "{run}", "--policy", "greedy", "--explore", "0.5"], "greedy"),
    (["evaluate", "--run", "{run}", "--policy", "diversity", "--explore", "2"], "explore"),
    # recommend
    (["recommend", "--run", "{run}", "--user", "u000", "--exclude-seen", "--include-seen"], "not allowed"),
    (["recommend", "--run", "{run}", "--user", "u000", "-k", "0"], "at least 1"),
    (["recommend", "--run", "{run}", "--user", "u000", "-k", "ten"], "-k"),
    (
        ["recommend", "--run", "{run}", "--user", "u000", "--policy", "diversity", "--explore", "1.5"],
        "explore",
    ),
    (["recommend", "--run", "{run}", "--user", "u000", "--policy", "greedy", "--explore", "0.5"], "greedy"),
    (["recommend", "--run", "{tmp}/nowhere", "--user", "u000"], "nowhere"),
    (["recommend", "--run", "{run}", "--user", "u000", "--device", "tpu"], "tpu"),
    # profile
    (["profile", "--run", "{run}", "--user", "nobody"], "nobody"),
    (["profile", "--run", "{tmp}/nowhere", "--user", "u000"], "nowhere"),
    # explain
    (["explain", "--run", "{run}", "--user", "u000", "--item", "no-such-item"], "no-such-item"),
    (["explain", "--run", "{run}", "--user", "nobody", "--item", "m01"], "nobody"),
    (["explain", "--run", "{run}", "--user", "u000", "--item", "m01", "--top", "0"], "at least 1"),
    # serve (each refused before a server starts)
    (["serve", "--run", "{tmp}/nowhere"], "nowhere"),
    (["serve", "--run", "{run}", "--port", "0"], "--port"),
    (["serve", "--run", "{run}", "--db", "mysql://db/x"], "--db"),
    (["serve", "--run", "{run}", "--ann-threshold", "many"], "--ann-threshold"),
    (["serve", "--run", "{run}", "--unknown-users", "ignore"], "--unknown-users"),
    # keys and forget
    (["keys", "create", "--scope", "read"], "--db"),
    (["keys", "create", "--run", "{run}", "--scope", "root"], "root"),
    (["keys", "create", "--run", "{run}", "--scope", "read", "--expires-in-days", "0"], "expires-in-days"),
    (["keys", "revoke", "--run", "{run}", "0123456789ab"], "0123456789ab"),
    (["keys", "list"], "--db"),
    (["forget", "--run", "{tmp}/nowhere", "--user", "u000"], "nowhere"),
]


def test_every_command_answers_bad_input_in_one_line(own_files, own_run, tmp_path, capsys):
    from penchant.cli.main import main

    assert len(BAD) >= 40
    commands = {row[0][0] for row in BAD}
    assert {"train", "evaluate", "recommend", "profile", "explain", "serve", "keys"} <= commands
    places = {"{run}": str(own_run), "{events}": str(own_files["events"]), "{tmp}": str(tmp_path)}
    failures = []
    for argv, fragment in BAD:
        argv = [_place(a, places) for a in argv]
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        ok = code == 2 and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
        if not ok:
            failures.append(f"{' '.join(argv[:3])} ... -> {code}: {err}")
    assert failures == []


def _place(arg: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        arg = arg.replace(key, value)
    return arg


def test_train_from_a_sql_query(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "shop.sqlite3") as db:
        db.execute("CREATE TABLE clicks (visitor TEXT, sku TEXT, ts REAL)")
        rows = [
            (f"v{u}", f"s{(u + s) % 12}", 1_600_000_000 + 60 * (u * 20 + s))
            for u in range(30)
            for s in range(8)
        ]
        db.executemany("INSERT INTO clicks VALUES (?, ?, ?)", rows)
    query = "SELECT visitor, sku, ts FROM clicks"
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    args = ["--events-sql", query, "--source-db", url, *OWN[:6], "--model", "popularity"]
    result = penchant("train", *args, "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["source"]["events_sql"] == query and url not in json.dumps(meta)  # a URL may hold a password
    assert meta["dataset"]["n_events"] == 240 and meta["dataset"]["name"] == "sql"
