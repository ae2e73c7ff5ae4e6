"""Retrieval: recall@10 of the HNSW index against exact scoring, and the time of each, on the ml-100k
transformer's own vectors and on larger catalogues.

1. The served path (``AnnRetriever`` vs ``ExactRetriever``) for all 943 ml-100k users over the real
   1,682-item catalogue, already-seen items kept and excluded.
2. The same index settings over catalogues enlarged with synthetic item vectors drawn from a Gaussian
   fitted to the real ones (mean and covariance), queried with the real users' vectors: how recall and
   time behave as the catalogue grows. These items are synthetic; only their geometry is realistic.

    .venv/bin/python benchmarks/serve_retrieval.py [--sizes 20000 100000 300000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from serve_common import conditions, conditions_md, ensure_ml100k_run, write

from penchant.runs import load_run
from penchant.serve.retrieval import HNSW_EF_CONSTRUCTION, HNSW_M, AnnRetriever, ExactRetriever, MipsIndex


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]))


def timed(fn, queries) -> tuple[list, float]:
    out, start = [], time.perf_counter()
    for q in queries:
        out.append(fn(q))
    return out, (time.perf_counter() - start) / len(queries) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(tempfile.gettempdir()) / "penchant-ml100k-run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 300_000])
    parser.add_argument("--ef-search", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    before = conditions()

    model = load_run(ensure_ml100k_run(args.run)).model
    histories = list(model.histories.values())
    exact, ann = ExactRetriever(model), AnnRetriever(model, ef_search=args.ef_search)
    served = []
    for exclude_seen in (False, True):
        truth, exact_ms = timed(lambda h: [i for i, _ in exact.top_k(h, 10, exclude_seen)], histories)  # noqa: B023
        found, ann_ms = timed(lambda h: [i for i, _ in ann.top_k(h, 10, exclude_seen)], histories)  # noqa: B023
        served.append(
            {
                "items": model.n_items,
                "exclude_seen": exclude_seen,
                "recall_at_10": round(recall(found, truth), 4),
                "exact_ms_per_user": round(exact_ms, 3),
                "ann_ms_per_user": round(ann_ms, 3),
            }
        )

    real = model.item_vectors().astype(np.float32)  # (I, D)
    queries = model.user_vectors(histories).astype(np.float32)  # (U, D)
    rng = np.random.default_rng(0)
    mean, cov = real.mean(axis=0), np.cov(real, rowvar=False)
    scaling = []
    for size in args.sizes:
        synthetic = rng.multivariate_normal(mean, cov, size=size - len(real)).astype(np.float32)
        vectors = np.ascontiguousarray(np.vstack([real, synthetic]))
        start = time.perf_counter()
        index = MipsIndex(vectors)  # the served index (penchant.serve.retrieval)
        build_s = time.perf_counter() - start
        # What POST /items does under ANN (AnnRetriever.extended): a copy of the index, so requests
        # in flight keep theirs, with the one new item inserted.
        start = time.perf_counter()
        grown = index.copy()
        grown.add(synthetic[:1])
        add_s = time.perf_counter() - start
        del grown
        truth, exact_ms = timed(lambda q: np.argpartition(-(vectors @ q), 10)[:10].tolist(), queries)  # noqa: B023
        found, ann_ms = timed(lambda q: index.search(q[None, :], 10, args.ef_search)[0].tolist(), queries)  # noqa: B023
        scaling.append(
            {
                "items": size,
                "recall_at_10": round(recall(found, truth), 4),
                "build_s": round(build_s, 1),
                "add_one_item_s": round(add_s, 3),
                "exact_ms_per_query": round(exact_ms, 3),
                "ann_ms_per_query": round(ann_ms, 3),
            }
        )
        print(scaling[-1], flush=True)

    result = {
        "benchmark": "serve_retrieval",
        "protocol": "HNSW (FAISS IndexHNSWFlat, L2 over the item vectors with one coordinate added so "
        "that the L2 order is the inner-product order, "
        f"M={HNSW_M}, efConstruction={HNSW_EF_CONSTRUCTION}, "
        f"efSearch={args.ef_search}) vs exact full-catalogue scoring; recall@10 = share of the exact top 10 "
        "that the index returns; one thread (torch and FAISS); times per single-user query",
        "served_path": served,
        "scaling": scaling,
        "conditions": before,
    }
    lines = [
        "# Retrieval benchmark (`benchmarks/serve_retrieval.py`)",
        "",
        result["protocol"] + ".",
        "",
        "Served path, ml-100k transformer, all 943 users (ANN candidates re-scored exactly):",
        "",
        "| items | seen excluded | recall@10 | exact ms/user | ANN ms/user |",
        "|---|---|---|---|---|",
    ]
    for r in served:
        lines.append(
            f"| {r['items']} | {r['exclude_seen']} | {r['recall_at_10']} | {r['exact_ms_per_user']} | "
            f"{r['ann_ms_per_user']} |"
        )
    lines += [
        "",
        "Larger catalogues (real item vectors plus synthetic ones from a Gaussian fitted to them; real "
        "users' query vectors; vector search only, no model forward pass):",
        "",
        "| items | recall@10 | index build s | add one item s (POST /items) | exact ms/query | ANN ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for r in scaling:
        lines.append(
            f"| {r['items']} | {r['recall_at_10']} | {r['build_s']} | {r['add_one_item_s']} | {r['exact_ms_per_query']} | "
            f"{r['ann_ms_per_query']} |"
        )
    lines += ["", "Conditions:", "", conditions_md(before)]
    write("serve_retrieval", result, "\n".join(lines))


if __name__ == "__main__":
    main()
