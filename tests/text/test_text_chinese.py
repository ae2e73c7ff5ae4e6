"""Chinese end to end with the multilingual encoder: train (`--text-encoder multilingual`), recommend,
score never-seen items by their Chinese text, and profile a user over topics found in that text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from penchant.runs import load_run
from tests.clitools import penchant

SCIFI = [
    "星际穿越",
    "流浪地球",
    "银河战争",
    "火星殖民地",
    "外星人入侵",
    "机器人起义",
    "时间机器",
    "太空站九号",
    "曲速引擎",
    "星云海盗",
    "月球基地",
    "星舰骑兵",
]
ROMANCE = [
    "巴黎之恋",
    "婚礼季节",
    "夏日恋曲",
    "初吻",
    "甜心",
    "第一次约会",
    "心碎旅馆",
    "情人节",
    "罗密欧的情书",
    "蜜月",
    "新娘与新郎",
    "坠入爱河",
]
ABOUT = {
    "s": "一部关于宇宙飞船、外星人和太空探险的科幻电影。",
    "r": "一个关于恋人、初吻和婚礼的浪漫爱情故事。",
}
COLD = ("s10", "s11", "r10", "r11")  # in the catalogue, never in any event
SMALL = '{"dim": 32, "layers": 1, "max_len": 20, "max_epochs": 12, "lr": 0.003, "threads": 1}'


@pytest.fixture(scope="module")
def chinese_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zh")
    rng = np.random.default_rng(0)
    rows = [
        (f"用户{u:02d}", f"{'s' if u % 2 == 0 else 'r'}{int(i)}", 1_600_000_000 + 3600 * u + 60 * step)
        for u in range(40)
        for step, i in enumerate(rng.choice(10, size=12))
    ]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(folder / "events.csv", index=False)
    with (folder / "items.jsonl").open("w", encoding="utf-8") as handle:
        for genre, titles in (("s", SCIFI), ("r", ROMANCE)):
            for i, title in enumerate(titles):
                record = {
                    "item_id": f"{genre}{i}",
                    "title": title,
                    "description": f"《{title}》：{ABOUT[genre]}",
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    out = folder / "run"
    result = penchant(
        "train",
        "--events",
        str(folder / "events.csv"),
        "--items",
        str(folder / "items.jsonl"),
        "--text-encoder",
        "multilingual",
        "--config",
        SMALL,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


def genre_of(user_id: str) -> str:
    return "s" if int(user_id[2:]) % 2 == 0 else "r"


def test_trained_with_the_multilingual_encoder_and_recommends_in_chinese(chinese_run):
    run = load_run(chinese_run)
    assert run.model.config.text_encoder == "multilingual" and run.model.item_repr == "fused"
    result = penchant("recommend", "--run", str(chinese_run), "--user", "用户00", "-k", "5", "--json")
    assert result.returncode == 0, result.stderr
    recs = json.loads(result.stdout)
    assert len(recs) == 5 and all(r["title"] in SCIFI for r in recs)  # 用户00 watches science fiction


def test_never_seen_chinese_items_are_ranked_by_their_text(chinese_run):
    run = load_run(chinese_run)
    model = run.model
    users = list(run.dataset.user_map.ids)
    scores = model.score([model.history_of(u) for u in users])
    idx = {i: model.item_map.index(i) for i in COLD}
    margins = []
    for row, user in enumerate(users):
        own = [scores[row, j] for i, j in idx.items() if i[0] == genre_of(user)]
        other = [scores[row, j] for i, j in idx.items() if i[0] != genre_of(user)]
        margins.append(np.mean(own) - np.mean(other))
    assert (np.array(margins) > 0).mean() >= 0.9


def test_profiles_over_topics_found_in_chinese_text(chinese_run):
    from penchant.interests.profile import build_profile
    from penchant.interests.taxonomy import Taxonomy

    run = load_run(chinese_run)
    taxonomy = Taxonomy.for_dataset(run.dataset, n_topics=2, encoder="multilingual")
    assert taxonomy.source == "topics" and taxonomy.n_interests == 2
    primary = taxonomy.primary()
    ids = run.dataset.item_map.ids
    topic_of = {g: {int(primary[i]) for i in range(len(ids)) if ids[i][0] == g} for g in "sr"}
    assert len(topic_of["s"]) == len(topic_of["r"]) == 1 and topic_of["s"] != topic_of["r"]  # genres found
    for user in ("用户00", "用户01"):
        profile = build_profile(user, run.model.history_of(user), taxonomy)
        top = profile.long_term[0].interest
        assert top == taxonomy.names[next(iter(topic_of[genre_of(user)]))]
        assert profile.summary
