"""Ray Train (2 DDP workers, gloo) against a plain one-process PyTorch loop: sequences/second.

Same model, data, global batch and sampler (``tasks.pretrain_worker.build_loaders``); both time the
epoch after a warm-up epoch. Ray's start-up (~20 s) is excluded: it is paid once per run,
not per epoch.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_pretrain.py
    RAY_ADDRESS=local .venv/bin/python benchmarks/bench_pretrain.py \
        --sequences 2048 8192 32768 --plain-threads 1

With several ``--sequences`` each size is timed in turn (one Ray for all) and the epoch
seconds' growth exponent is fitted per runner (log-log slope; 1 = linear).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import numpy as np
import pyarrow as pa
import torch

from catalog.datasets import Catalog
from infra.ray import ensure_ray
from infra.settings import configure_environment
from ops.sequence import set_seed, train_epoch
from tasks.pretrain import PretrainParams, build_config, run_trainer
from tasks.pretrain_worker import STATE_FILE, build_encoder_objective, build_loaders

VOCAB = 40


def write_random_sequences(root: str, n: int, length: int, seed: int = 0) -> None:
    """``n`` sessions of exactly ``length`` events: every batch is the full ``[B, length]``."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, VOCAB + 2, size=(n, length), dtype=np.int32)
    dwell = rng.lognormal(0.5, 1.0, size=(n, length)).astype(np.float32)
    offsets = pa.array(np.arange(0, n * length + 1, length, dtype=np.int32))
    Catalog(root).save_table(
        "sequences",
        pa.table(
            {
                "txn_id": pa.array([f"t{i}" for i in range(n)]),
                "tokens": pa.ListArray.from_arrays(offsets, pa.array(tokens.ravel())),
                "dwell": pa.ListArray.from_arrays(offsets, pa.array(dwell.ravel())),
            }
        ),
    )


def plain_loop(config: dict, epochs: int, threads: int) -> tuple[float, float]:
    """Sequences/second and seconds of the last epoch, one process, ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    set_seed(config["seed"])
    loader, _ = build_loaders(config, world_size=1, rank=0)
    _, objective = build_encoder_objective(config)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=config["learning_rate"])
    rate = seconds = 0.0
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        train_epoch(objective, loader, optimizer)
        seconds = time.perf_counter() - started
        rate = len(loader) * loader.batch_size / seconds
        print(f"plain loop, {threads} threads, epoch {epoch}: {rate:,.0f} sequences/s")
    return rate, seconds


def ray_train(config: dict, params: PretrainParams) -> tuple[float, float]:
    """Sequences/second and seconds of the last epoch, as timed by rank 0 in the worker loop."""
    result = run_trainer(config, params, name=f"bench-{uuid.uuid4().hex[:8]}")
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        history = torch.load(Path(directory) / STATE_FILE, weights_only=True)["history"]
    for h in history:
        print(f"ray train epoch {h['epoch']}: {h['sequences_per_second']:,.0f} sequences/s")
    return float(history[-1]["sequences_per_second"]), float(history[-1]["epoch_seconds"])


def time_size(args: argparse.Namespace, n: int) -> dict[str, tuple[float, float]]:
    """Each runner's (sequences/s, epoch seconds) on ``n`` random sessions."""
    with tempfile.TemporaryDirectory() as root:
        write_random_sequences(root, n, args.length)
        params = PretrainParams(
            epochs=args.epochs,
            batch_size=args.batch,
            num_workers=args.workers,
            max_train_sequences=n,
            patience=args.epochs + 1,
            use_gpu=False,
        )
        config = build_config(root, VOCAB, args.length, params, run_id=None)
        config["threads_per_worker"] = max(1, (os.cpu_count() or 1) // args.workers)
        runs = {
            f"plain PyTorch loop, 1 process, {t} threads": plain_loop(config, args.epochs, t)
            for t in args.plain_threads
        }
        ensure_ray()
        runs[f"Ray Train, {args.workers} workers (gloo DDP)"] = ray_train(config, params)
    return runs


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log seconds on log size: 1 is linear growth."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, nargs="+", default=[8192])
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="the first is warm-up")
    cores = len(os.sched_getaffinity(0))
    # Both thread counts by default: small LSTM kernels scale poorly across threads, so the best
    # single process is the fair baseline, not necessarily the one with every core.
    parser.add_argument(
        "--plain-threads", type=int, nargs="+", default=sorted({1, cores}), help="plain loops"
    )
    args = parser.parse_args()

    configure_environment()
    results = {n: time_size(args, n) for n in args.sequences}
    print(f"\nsequence length {args.length}, global batch {args.batch}, {cores} cores")
    for n, runs in results.items():
        best = max(rate for name, (rate, _) in runs.items() if name.startswith("plain"))
        for name, (rate, seconds) in runs.items():
            print(f"{n:>9,} {name:42s} {rate:8,.0f} sequences/s  epoch {seconds:8.1f} s")
        ray_rate = next(rate for name, (rate, _) in runs.items() if name.startswith("Ray"))
        ratio = "ratio Ray / best plain loop"
        print(f"{n:>9,} {ratio:42s} {ray_rate / best:8.2f}x (target >= 0.8x)")
    sizes = list(results)
    if len(sizes) > 1:
        for name in results[sizes[0]]:
            seconds = [results[n][name][1] for n in sizes]
            print(f"epoch-time growth exponent, {name}: {growth_exponent(sizes, seconds):.2f}")


if __name__ == "__main__":
    main()
