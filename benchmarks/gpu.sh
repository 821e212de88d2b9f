#!/usr/bin/env bash
# GPU checks for ops/knn.py and ops/phdbscan.py, prepared to run in one go on a device machine.
#
# The GPU image has CUDA, PyTorch and CuPy but no faiss-gpu, so PHDBSCAN runs its kNN on the
# torch brute-force backend (chunked matmul + topk); FAISS CPU is used only if importable.
#
#   bash benchmarks/gpu.sh            # GPU-marked tests, then the 10M x 32 benchmark
#   N=2000000 bash benchmarks/gpu.sh  # smaller benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
N=${N:-10000000}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

nvidia-smi --query-gpu=name,memory.total --format=csv || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. GPU-marked tests (torch CUDA kNN vs flat, PHDBSCAN with the torch backend, faiss GPU k-means
#    when a faiss GPU build exists). Tests needing faiss/hdbscan skip when those are absent.
"$PY" -m pytest -q -m gpu tests/ops/test_knn.py tests/ops/test_phdbscan.py tests/ops/test_kmeans.py \
  -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt"

# 2. Scale run: PHDBSCAN default mode on torch CUDA kNN (reference libraries are CPU-bound and
#    would not finish at this size, hence --skip-slow-refs and no fast_hdbscan).
"$PY" benchmarks/bench_phdbscan.py --sizes "$N" --dims 32 --methods phdbscan_auto \
  --knn-backend torch --device cuda --skip-slow-refs --slow-ref-max-n 0 --timeout 560 \
  2>&1 | tee "$OUT/gpu_bench_${N}.txt"

# ---------------------------------------------------------------------------------------------
# 3. Pretraining (tasks/pretrain.py's encoder; owner: pretraining): one epoch of the
#    time-attention Bi-LSTM + reconstruction on CUDA after a warm-up epoch, sequences/second.
"$PY" benchmarks/gpu_train.py --device cuda 2>&1 | tee "$OUT/gpu_train.txt"
