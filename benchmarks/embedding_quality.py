"""Do ring transactions embed next to their own ring? Bag of events against the sequence encoder.

For each generator (shop; marketplace with other page names), sessions are built as ingest
builds them (last ``--max-len`` events), then embedded by: the bag-of-events baseline, the
time-attention Bi-LSTM trained with reconstruction, and with contrastive. Reported per encoder:

* ``rings@10``: over ring transactions, the mean share of their 10 nearest neighbours
  (Euclidean, all transactions) in the same ring;
* ``timing@10``: the same share for the machine-timing ring (shop ``timing_bot``,
  marketplace ``replay_timing``: normal paths, steady machine cadence);
* ``timing AUC``: timing ring against normal shoppers, each scored by the share of its 10
  neighbours (within ring + normal) that are ring; 0.5 is chance;
* ``rhythm@10``, ``rhythm AUC``: the same for the content-blind ring (shop ``rhythm_bot``,
  marketplace ``shuffled_replay``: normal paths *and* a human's set of delays, spent on the
  wrong pages), which neither pages nor dwell statistics can see.

The encoders train in-process with ``ops.sequence._training`` (the loop Ray Train runs per worker).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/embedding_quality.py
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import numpy as np
import pyarrow as pa
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors
from torch.utils.data import DataLoader, Subset

from catalog.synthetic import marketplace_tables, shop_tables
from ops.ingest import sessionize_events
from ops.sequence import (
    BagOfEventsEncoder,
    SequenceCollator,
    SequenceDataset,
    TimeAttentionBiLSTM,
    build_objective,
    embed,
    set_seed,
    train_epoch,
)
from tasks.io import split_lists

# Per generator: the machine-timing ring, then the content-blind one.
TIMING_RINGS = {
    "shop": ("timing_bot", "rhythm_bot"),
    "marketplace": ("replay_timing", "shuffled_replay"),
}
NOT_RINGS = {"normal", "scattered_fraud"}


def sessions(
    events: pa.Table, max_len: int, vocabulary_size: int = 64
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], int]:
    """``txn_id``, tokens, dwell as ingest writes them, and the vocabulary size."""
    table, vocabulary = sessionize_events(events, max_len, vocabulary_size)
    return (
        table.column("txn_id").to_numpy(zero_copy_only=False).astype(str),
        split_lists(table.column("tokens"), np.int64),
        split_lists(table.column("dwell"), np.float32),
        len(vocabulary),
    )


def train_encoder(
    objective_name: str,
    tokens: list[np.ndarray],
    dwell: list[np.ndarray],
    vocab_size: int,
    args: argparse.Namespace,
) -> np.ndarray:
    """Self-supervised fit on a sample of ``--train`` sessions, then embed every session."""
    set_seed(args.seed)
    encoder = TimeAttentionBiLSTM(vocab_size + 2, hidden_size=args.hidden, embedding_dim=32)
    objective = build_objective(objective_name, encoder)
    sample = np.random.default_rng(args.seed).permutation(len(tokens))[: args.train]
    loader = DataLoader(
        Subset(SequenceDataset(tokens, dwell), sample),
        batch_size=256,
        shuffle=True,
        collate_fn=SequenceCollator(args.max_len),
        generator=torch.Generator().manual_seed(args.seed),
        drop_last=True,
    )
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        started = time.perf_counter()
        loss = train_epoch(objective, loader, optimizer)
        seconds = time.perf_counter() - started
        print(f"  {objective_name} epoch {epoch}: loss {loss:.4f} ({seconds:.0f} s)")
    return embed(encoder, tokens, dwell, args.max_len)


def scores(
    vectors: np.ndarray, pattern: np.ndarray, timing: tuple[str, str], k: int = 10
) -> dict[str, float]:
    """``rings@10`` and, per timing-only ring, ``@10`` and ``AUC`` (see the module docstring)."""
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(vectors).kneighbors(vectors)
    same = (pattern[idx[:, 1:]] == pattern[:, None]).mean(axis=1)
    rings = ~np.isin(pattern, list(NOT_RINGS))
    out = {
        "rings@10": float(np.mean([same[pattern == p].mean() for p in np.unique(pattern[rings])]))
    }
    for name, ring in zip(("timing", "rhythm"), timing, strict=True):
        pair = np.isin(pattern, [ring, "normal"])
        sub, is_ring = vectors[pair], pattern[pair] == ring
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(sub).kneighbors(sub)
        out[f"{name}@10"] = float(same[pattern == ring].mean())
        out[f"{name} AUC"] = float(roc_auc_score(is_ring, is_ring[idx[:, 1:]].mean(axis=1)))
    return out


def compare(generator: str, args: argparse.Namespace) -> list[tuple[str, str, dict[str, float]]]:
    """Every encoder's scores on one generator's world."""
    make = shop_tables if generator == "shop" else marketplace_tables
    tables = make(args.transactions, seed=args.seed)
    txn_ids, tokens, dwell, vocab_size = sessions(tables.events, args.max_len)
    truth = tables.truth.to_pandas().set_index("txn_id")["pattern"]
    pattern = truth.reindex(txn_ids).fillna("normal").to_numpy(dtype=str)
    print(f"{generator}: {len(txn_ids)} sessions, vocabulary {vocab_size}")
    rows = []
    labels = ["bag of events", "bag of events, pages only"]
    labels += [f"Bi-LSTM + {o}" for o in args.objectives.split(",") if o]
    for label in labels:
        if label.startswith("bag of events"):
            # Pages only (dwell block weighted 0): shows how much of a ring is timing.
            weight = 0.0 if "pages only" in label else 1.0
            vectors = BagOfEventsEncoder(dwell_weight=weight).fit_transform(tokens, dwell)
        else:
            objective = label.removeprefix("Bi-LSTM + ")
            vectors = train_encoder(objective, tokens, dwell, vocab_size, args)
        rows.append(
            (generator, label, scores(np.asarray(vectors), pattern, TIMING_RINGS[generator]))
        )
        print(f"  {label}: {rows[-1][2]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--max-len", type=int, default=32, help="ingest's default")
    parser.add_argument("--hidden", type=int, default=32, help="pretrain's default")
    parser.add_argument("--train", type=int, default=12_000, help="sessions fitted on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--generators", default="shop,marketplace")
    parser.add_argument("--objectives", default="reconstruction,contrastive")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))

    rows = [row for g in args.generators.split(",") for row in compare(g, args)]
    print(
        f"\nmax_len {args.max_len}, hidden {args.hidden}, {args.epochs} epochs on "
        f"{args.train} sessions, {args.transactions} transactions per generator\n"
    )
    columns = ["rings@10", "timing@10", "timing AUC", "rhythm@10", "rhythm AUC"]
    print(f"| generator | encoder | {' | '.join(columns)} |")
    print("|---|---|" + "---:|" * len(columns))
    for generator, label, s in rows:
        print(f"| {generator} | {label} | " + " | ".join(f"{s[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
