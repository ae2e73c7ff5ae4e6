"""A picture of a profile: long-term vs short-term share of each interest, emerging and fading marked."""

from __future__ import annotations

from pathlib import Path

from penchant.interests.profile import Profile

LONG_COLOUR = "#8da0cb"
SHORT_COLOUR = "#fc8d62"
EMERGING_COLOUR = "#1a9850"
FADING_COLOUR = "#b2182b"


def plot_profile(profile: Profile, path: str | Path, max_interests: int = 12) -> Path:
    """Write a PNG of the profile's strongest interests (by either horizon) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    path = Path(path)
    long_term = {w.interest: w.weight for w in profile.long_term}
    short_term = {w.interest: w.weight for w in profile.short_term}
    emerging = {s.interest for s in profile.emerging}
    fading = {s.interest for s in profile.fading}
    names = sorted(
        set(long_term) | set(short_term), key=lambda n: -max(long_term.get(n, 0), short_term.get(n, 0))
    )
    # Shifted interests are the point of the picture: keep them even when they are small.
    shown = [n for n in names if n in emerging or n in fading]
    shown += [n for n in names if n not in shown][: max(0, max_interests - len(shown))]
    shown.sort(key=lambda n: -long_term.get(n, 0))

    height = 1.6 + 0.45 * max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(8.5, height), dpi=110)
    rows = range(len(shown))
    bar = 0.38
    ax.barh(
        [r - bar / 2 for r in rows],
        [long_term.get(n, 0) for n in shown],
        bar,
        color=LONG_COLOUR,
        label=f"long term (all {profile.n_events} events, {profile.config.half_life_days:g}-day half-life)",
    )
    ax.barh(
        [r + bar / 2 for r in rows],
        [short_term.get(n, 0) for n in shown],
        bar,
        color=SHORT_COLOUR,
        label=f"short term ({profile.window})",
    )
    labels = []
    for n in shown:
        mark = "  \u25b2 emerging" if n in emerging else "  \u25bc fading" if n in fading else ""
        labels.append(n + mark)
    ax.set_yticks(list(rows), labels)
    for tick, n in zip(ax.get_yticklabels(), shown, strict=True):
        if n in emerging:
            tick.set_color(EMERGING_COLOUR)
            tick.set_fontweight("bold")
        elif n in fading:
            tick.set_color(FADING_COLOUR)
            tick.set_fontweight("bold")
    ax.invert_yaxis()  # strongest long-term interest on top
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("share of the user's interest")
    ax.set_title(f"Interests of user {profile.user_id}: long term vs recent", loc="left", fontsize=12)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    rule = (
        f"\u25b2 emerging: recent share at least {profile.config.shift_ratio:g}\u00d7 the long-term share "
        f"and {profile.config.shift_gap * 100:g} points above it; \u25bc fading: the reverse"
    )
    fig.text(0.01, 0.01, rule, fontsize=7.5, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
