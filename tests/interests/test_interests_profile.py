"""Interest profiles on hand-made histories whose long-term, short-term and shifting interests are known."""

import json

import numpy as np
import pytest
from PIL import Image

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.interests import LLMSettings, ProfileConfig, Taxonomy, build_profile, narrate
from penchant.interests.plot import plot_profile
from penchant.interests.profile import DAY, interest_shares
from tests.llm import FakeChat

# Items 0-3 are genre A, 4-7 genre B, 8 is both A and C.
NAMES = ["A", "B", "C"]


def taxonomy() -> Taxonomy:
    membership = np.zeros((9, 3), dtype=np.float32)
    membership[0:4, 0] = 1.0
    membership[4:8, 1] = 1.0
    membership[8, [0, 2]] = 0.5
    return Taxonomy(names=NAMES, membership=membership)


def history(items: list[int], step_s: float = 60.0) -> History:
    return History(
        np.array(items, dtype=np.int64), 1_600_000_000 + step_s * np.arange(len(items), dtype=np.float64)
    )


def test_a_move_from_a_to_b_shows_b_emerging_and_a_fading():
    # 40 events of A, then 20 of B, a minute apart: time decay is negligible.
    h = history([i % 4 for i in range(40)] + [4 + i % 4 for i in range(20)])
    profile = build_profile("u1", h, taxonomy(), ProfileConfig(short_events=20))
    long_term = {w.interest: w.weight for w in profile.long_term}
    assert long_term == pytest.approx({"A": 2 / 3, "B": 1 / 3}, abs=1e-4)
    assert [(w.interest, w.weight) for w in profile.short_term] == [("B", 1.0)]
    assert [s.interest for s in profile.emerging] == ["B"]
    assert [s.interest for s in profile.fading] == ["A"]
    assert profile.n_recent == 20
    assert "Emerging: B" in profile.summary and "Fading: A" in profile.summary


def test_a_steady_user_has_nothing_emerging_or_fading():
    h = history([0, 4] * 30)
    profile = build_profile("u2", h, taxonomy(), ProfileConfig(short_events=10))
    assert profile.emerging == [] and profile.fading == []
    assert "matches their long-term mix" in profile.summary
    assert profile.summary == build_profile("u2", h, taxonomy(), ProfileConfig(short_events=10)).summary


def test_long_term_decays_with_the_half_life_and_the_short_term_alike():
    # A one half-life before B: A counts half as much as B, in both horizons (the same rule).
    h = History(np.array([0, 4]), np.array([0.0, 30 * DAY]))
    long_term, short_term, n_recent = interest_shares(h, taxonomy(), ProfileConfig(half_life_days=30))
    assert long_term == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert short_term == pytest.approx([1 / 3, 2 / 3, 0.0]) and n_recent == 2


def test_a_history_too_short_for_two_horizons_shows_no_false_fading():
    # 18 events: 12 dramas (A), then 6 horrors (B) in a row. The 20-event window is the whole
    # history, so nothing can be said to emerge or fade; the profile says why.
    h = history([0] * 12 + [4] * 6)
    profile = build_profile("u", h, taxonomy())
    assert profile.emerging == [] and profile.fading == []
    assert "18 events" in profile.shift_note and "twice as long" in profile.shift_note
    assert "Too short a history" in profile.summary and profile.to_dict()["shift_note"] == profile.shift_note
    # With a history twice the window, the same recent run of horrors is a real shift.
    long = build_profile("u", history([0] * 40 + [4] * 6), taxonomy(), ProfileConfig(short_events=10))
    assert [s.interest for s in long.emerging] == ["B"] and long.shift_note is None


def test_short_term_by_days_and_shared_membership():
    # Item 8 (A and C) 10 days before the end, B in the last day.
    h = History(np.array([8, 8, 4, 5]), np.array([0.0, 1.0, 10 * DAY - 5, 10 * DAY]))
    long_term, short_term, n_recent = interest_shares(h, taxonomy(), ProfileConfig(short_days=1))
    assert n_recent == 2
    assert short_term == pytest.approx([0.0, 1.0, 0.0])
    assert long_term[0] == pytest.approx(long_term[2])  # item 8 splits evenly between A and C


def test_gap_threshold_keeps_small_flickers_out():
    # C rises from 1% to 4%: four times larger, but under the 5-point gap.
    h = history([0] * 196 + [8] * 4 + [0] * 46 + [8] * 4)
    profile = build_profile("u", h, taxonomy(), ProfileConfig(short_events=50, shift_gap=0.05))
    assert "C" not in {s.interest for s in profile.emerging}


def test_empty_history_and_bad_settings():
    profile = build_profile("nobody", History.empty(), taxonomy())
    assert profile.long_term == [] and "no activity" in profile.summary
    with pytest.raises(InputError, match="half_life_days"):
        ProfileConfig(half_life_days=0)
    with pytest.raises(InputError, match="short_events"):
        ProfileConfig(short_events=0)


def test_profile_json_shape():
    out = build_profile("u1", history([0, 1, 4]), taxonomy()).to_dict()
    assert {"user_id", "long_term", "short_term", "emerging", "fading", "summary"} <= set(out)
    assert set(out["long_term"][0]) == {"interest", "weight"}
    assert json.loads(json.dumps(out)) == out


# ------------------------------------------------------------------------------------ language model
def test_llm_summary_when_an_endpoint_answers(chat_url):
    profile = build_profile("u1", history([0] * 10 + [4] * 5), taxonomy(), ProfileConfig(short_events=5))
    narrate(profile, LLMSettings(url=chat_url, model="m", api_key="k"))
    assert profile.summary == "They love B lately." and profile.summary_source == "llm"
    sent = FakeChat.received[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k"
    assert '"B"' in sent["body"]["messages"][1]["content"]


@pytest.mark.parametrize(
    "model, url, reason", [("broken", None, "HTTP 500"), ("m", "http://127.0.0.1:9/v1", "failed")]
)
def test_llm_failure_falls_back_and_says_so(chat_url, model, url, reason):
    profile = build_profile("u1", history([0, 4]), taxonomy())
    deterministic = profile.summary
    narrate(profile, LLMSettings(url=url or chat_url, model=model, timeout_s=5))
    assert profile.summary == deterministic and profile.summary_source == "deterministic"
    assert (
        reason in profile.summary_note and "deterministic summary used" in profile.to_dict()["summary_note"]
    )


def test_llm_settings_from_environment(monkeypatch):
    monkeypatch.delenv("PENCHANT_LLM_URL", raising=False)
    assert LLMSettings.from_env() is None
    monkeypatch.setenv("PENCHANT_LLM_URL", "http://host/v1/chat/completions")
    monkeypatch.setenv("PENCHANT_LLM_MODEL", "small")
    settings = LLMSettings.from_env()
    assert settings.endpoint == "http://host/v1/chat/completions" and settings.model == "small"


# ------------------------------------------------------------------------------------ plot
def test_plot_writes_a_png(tmp_path):
    profile = build_profile(
        "u1", history([i % 4 for i in range(40)] + [4] * 20), taxonomy(), ProfileConfig(short_events=20)
    )
    path = plot_profile(profile, tmp_path / "sub" / "profile.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 150


def test_recent_events_without_any_interest_are_said_plainly():
    membership = np.vstack(
        [taxonomy().membership.toarray(), np.zeros((1, 3), dtype=np.float32)]
    )  # item 9: no interest
    tax = Taxonomy(names=NAMES, membership=membership)
    profile = build_profile("u", history([0] * 10 + [9] * 5), tax, ProfileConfig(short_events=5))
    assert profile.short_term == []
    assert "Nothing in the last 5 events has a known interest." in profile.summary
