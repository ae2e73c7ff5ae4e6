"""Synthetic behaviour logs at any size, written as a directory of Parquet files (as Spark writes them).

    .venv/bin/python benchmarks/synthetic.py --events 1000000 --out /tmp/log1m

The world: ``n_items`` items, each in one of ``n_interests`` latent interests, with power-law (Zipf)
popularity inside its interest; ``n_users`` users, each with a few latent interests (Dirichlet weights)
and an activity drawn from a power law, so a few users have long logs and most short ones. A user's
log is a sequence of sessions in time order: a session stays in one of the user's interests, events in
it are a minute or so apart, sessions a day or so apart. Everything is drawn from one seed, vectorised,
so 10^7 events take seconds. Columns: user_id, item_id, timestamp (Unix seconds), event_type.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class LogShape:
    n_events: int
    n_users: int
    n_items: int
    n_interests: int = 50
    interests_per_user: int = 3
    session_length: float = 6.0  # mean events per session
    zipf: float = 1.1  # item popularity exponent inside an interest
    seed: int = 0

    @classmethod
    def scaled(cls, n_events: int, seed: int = 0) -> LogShape:
        """The shapes the scale benchmark uses: 50 events per user and 10 per item on average
        (10^7 events: 200,000 users, 10^6 items)."""
        return cls(n_events, max(10, n_events // 50), max(100, n_events // 10), seed=seed)


# What a catalogue's titles are about: the latent interests, named (interest j is TOPICS[j % 50]).
TOPICS = (
    "astronomy", "baking", "camping", "chess", "cycling", "dinosaurs", "fishing", "gardening", "guitar",
    "hiking", "jazz", "knitting", "painting", "photography", "poetry", "pottery", "robots", "sailing",
    "skiing", "soccer", "space travel", "surfing", "tennis", "trains", "volcanoes", "wine", "yoga",
    "zombies", "birds", "cats", "coffee", "dogs", "football", "history", "horses", "mathematics",
    "mountains", "opera", "pirates", "puzzles", "rivers", "romance", "science fiction", "spies",
    "submarines", "tea", "theatre", "vampires", "wizards", "woodwork",
)  # fmt: skip
VARIANTS = (
    "A beginner's guide to", "The big book of", "Stories of", "The history of", "A field guide to",
    "Advanced", "Everyday", "The joy of", "Secrets of", "Pocket", "The art of", "Classic", "Modern",
    "Little", "Wild", "Hidden", "The world of", "Weekend", "Family", "Essential",
)  # fmt: skip


def _item_interests(shape: LogShape, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(shape.n_interests, size=shape.n_items)


def write_items(shape: LogShape, path: Path) -> Path:
    """The catalogue of the log ``shape`` describes, as one Parquet file: item_id, title,
    description, category, each from the item's latent interest (so text and behaviour agree).
    Titles repeat (a variant of the topic: 20 per interest), as a real catalogue's editions do, so
    encoding a million of them encodes a thousand."""
    interest = _item_interests(shape, np.random.default_rng(shape.seed))  # as generate() draws them
    topic = np.array(TOPICS)[interest % len(TOPICS)]
    variant = np.array(VARIANTS)[np.arange(shape.n_items) % len(VARIANTS)]
    table = pa.table(
        {
            "item_id": pa.array(np.char.add("i", np.arange(shape.n_items).astype(str))),
            "title": pa.array(np.char.add(np.char.add(variant, " "), topic)),
            "description": pa.array(np.char.add("Everything about ", topic)),
            "category": pa.array(topic),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def generate(shape: LogShape) -> dict[str, np.ndarray]:
    """The log as columns, sorted by user then time."""
    rng = np.random.default_rng(shape.seed)
    n, u, i, k = shape.n_events, shape.n_users, shape.n_items, shape.n_interests
    # Items: an interest each; inside it a Zipf popularity over its items (by a random rank).
    item_interest = _item_interests(shape, rng)
    order = np.argsort(item_interest, kind="stable")  # items grouped by interest
    counts = np.bincount(item_interest, minlength=k)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(i, dtype=np.int64)
    rank[order] = np.arange(i) - np.repeat(starts, counts)  # each item's rank inside its interest
    weight = 1.0 / (rank + 1.0) ** shape.zipf
    cdf = np.cumsum(weight[order])  # cumulative popularity, items in interest order
    ends = starts + counts
    offset = np.where(starts > 0, cdf[np.maximum(starts - 1, 0)], 0.0)  # weight before each interest
    total = np.where(counts > 0, cdf[np.maximum(ends - 1, 0)] - offset, 0.0)
    # Users: activity from a power law, at least 2 events each, scaled to n events in all.
    activity = rng.pareto(1.5, size=u) + 1.0
    lengths = np.maximum(2, np.floor(activity / activity.sum() * n)).astype(np.int64)
    while lengths.sum() > n:  # trim the longest logs down to exactly n events
        longest = np.argmax(lengths)
        lengths[longest] -= min(lengths.sum() - n, lengths[longest] - 2)
    lengths[np.argmin(lengths)] += n - lengths.sum()
    user = np.repeat(np.arange(u), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    step = np.arange(n) - np.repeat(first, lengths)
    # Sessions: a new one with probability 1 / session_length (always at a user's first event).
    new_session = (rng.random(n) < 1.0 / shape.session_length) | (step == 0)
    session = np.cumsum(new_session) - 1
    # Each user's interests and weights; each session draws one of them.
    stocked = np.flatnonzero(counts > 0)
    mine = stocked[rng.integers(len(stocked), size=(u, shape.interests_per_user))]
    shares = rng.dirichlet(np.ones(shape.interests_per_user), size=u)
    session_user = user[new_session]
    pick = (rng.random(len(session_user))[:, None] > np.cumsum(shares[session_user], axis=1)).sum(axis=1)
    pick = np.minimum(pick, shape.interests_per_user - 1)
    interest = mine[session_user, pick][session]
    # An item of that interest by its popularity: inverse CDF inside the interest's block.
    target = offset[interest] + rng.random(n) * total[interest]
    position = np.searchsorted(cdf, target, side="right")
    position = np.clip(position, starts[interest], ends[interest] - 1)
    item = order[position]
    # Times: about a minute apart inside a session, about a day between sessions.
    gaps = np.where(new_session, rng.exponential(86_400.0, size=n), rng.exponential(60.0, size=n))
    gaps[step == 0] = rng.uniform(0, 30 * 86_400.0, size=int((step == 0).sum()))
    times = np.cumsum(gaps)
    times -= np.repeat(times[first] - gaps[first], lengths)  # restart the clock at each user
    return {
        "user_id": user,
        "item_id": item,
        "timestamp": 1_600_000_000.0 + np.round(times, 3),
        "interest": interest,
    }


def write(shape: LogShape, directory: Path, rows_per_file: int = 1_000_000) -> Path:
    """Write the log as part files ``part-00000.parquet`` ... (string IDs ``u…`` and ``i…``)."""
    columns = generate(shape)
    directory.mkdir(parents=True, exist_ok=True)
    views = np.array(["view", "click", "purchase"])
    for part, start in enumerate(range(0, shape.n_events, rows_per_file)):
        end = min(start + rows_per_file, shape.n_events)
        table = pa.table(
            {
                "user_id": pa.array(np.char.add("u", columns["user_id"][start:end].astype(str))),
                "item_id": pa.array(np.char.add("i", columns["item_id"][start:end].astype(str))),
                "timestamp": pa.array(columns["timestamp"][start:end]),
                "event_type": pa.array(views[np.arange(start, end) % 7 // 5]),
            }
        )
        pq.write_table(table, directory / f"part-{part:05d}.parquet")
    (directory / "_SUCCESS").write_text("")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = LogShape.scaled(args.events, args.seed)
    write(shape, args.out)
    print(f"{shape.n_events} events of {shape.n_users} users over {shape.n_items} items -> {args.out}")


if __name__ == "__main__":
    main()
