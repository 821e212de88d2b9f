"""One epoch of encoder pretraining on one device: sequences/second after a warm-up epoch.

The plain PyTorch loop of ``ops.sequence._training`` (what each Ray Train worker runs) on random
sessions of exactly ``--length`` events, so every batch is the full ``[batch, length]``.

    .venv/bin/python benchmarks/gpu_train.py                 # CUDA
    .venv/bin/python benchmarks/gpu_train.py --device cpu --sequences 2048
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ops.sequence import (
    SequenceBatch,
    TimeAttentionBiLSTM,
    build_objective,
    collate_sequences,
    set_seed,
    train_epoch,
)

VOCAB = 40


def random_batches(n: int, length: int, batch: int, seed: int = 0) -> list[SequenceBatch]:
    """Pre-collated batches, so the timing is the model's and not the collator's."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, VOCAB + 2, size=(n, length))
    dwell = rng.lognormal(0.5, 1.0, size=(n, length)).astype(np.float32)
    return [
        collate_sequences(list(tokens[i : i + batch]), list(dwell[i : i + batch]), length)
        for i in range(0, n - batch + 1, batch)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sequences", type=int, default=262_144)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--objective", default="reconstruction")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available")

    set_seed(0)
    encoder = TimeAttentionBiLSTM(VOCAB + 2, hidden_size=args.hidden)
    objective = build_objective(args.objective, encoder).to(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    batches = [b.to(device) for b in random_batches(args.sequences, args.length, args.batch)]
    for epoch in ("warm-up", "timed"):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = train_epoch(objective, batches, optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        rate = len(batches) * args.batch / seconds
        print(f"{epoch} epoch: loss {loss:.4f}, {seconds:.1f} s, {rate:,.0f} sequences/s")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"pretrain one epoch on {name}: {rate:,.0f} sequences/s "
        f"({args.objective}, length {args.length}, batch {args.batch}, hidden {args.hidden})"
    )


if __name__ == "__main__":
    main()
