#!/usr/bin/env bash
# The GPU checks of issue #13, prepared for a lent GPU machine (the `device` tool: one H200, a short lease).
#   here, once:  bash scripts/gpu_check.sh prepare
#                (the wheels the GPU image lacks, ~20 MB -> .whl/, for Python $WHEEL_PYTHON, default 3.12 as
#                there; and .gpu/data, a link to the shared data folder; both ignored by git, nothing copied
#                into the repository)
#   on the GPU:  the device tool's run with command "bash scripts/gpu_check.sh run", timeout_s 540 and
#                carry [".whl", ".gpu/data/ecoli_k12/genome/NC_000913.3.fa"]
# `run` installs the carried wheels, runs tests/test_cuda.py (the fast path, training gradients and
# whole-genome prediction on the GPU against the textbook path and the CPU), a one-epoch training run with
# trainer=gpu (bf16-mixed) on the synthetic genome, then the paths bench (fast vs textbook, inference and both
# training modes) and the whole-genome E. coli bench on the GPU. Logs and JSON go to $OUT (the device tool's
# folder that comes back), else ./gpu_out; steps.txt lists each step's exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the GPU's tiles: one attention call per layer for all streams (the CPU's small tiles suit caches, not a GPU)
GPU_TILES=(--batch 64 --query-block 512 --stream-block 64)

case "${1:-}" in
prepare)
  mkdir -p .whl .gpu
  rm -f .whl/*.whl
  # genometracks' runtime dependencies that the GPU image lacks (the device tool's KINDS.md lists what it holds),
  # at the versions installed here; TF-MoDISco's chain (modisco, igraph, hdf5plugin) is left out: no GPU check uses it
  missing="hydra-core omegaconf hydra-submitit-launcher submitit pyBigWig pysam pyfaidx pybigtools logomaker memelite tangermeme figwig"
  # shellcheck disable=SC2086
  versions=$($PY -m pip show $missing | awk '/^Name:/ {n=$2} /^Version:/ {print n "==" $2}')
  # shellcheck disable=SC2086
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $versions
  # omegaconf's parser runtime is published as source only: built here into a pure-Python wheel
  antlr=$($PY -m pip show antlr4-python3-runtime | awk '/^Version:/ {print $2}')
  $PY -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$antlr"
  ln -sfn "$($PY -c 'from genometracks.io.paths import shared_data; print(shared_data().resolve())')" .gpu/data
  ls .whl && du -sh .whl
  test -f .gpu/data/ecoli_k12/genome/NC_000913.3.fa || { echo "gpu_check.sh: no E. coli FASTA under .gpu/data (set GENOMETRACKS_DATA)"; exit 1; }
  ;;
run)
  out=${OUT:-gpu_out}
  mkdir -p "$out"
  scratch=$(mktemp -d)  # the installed wheels, the smoke run and the genome bench's bigWigs
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$scratch/site" .whl/*.whl
  # the CPU side of the comparisons runs on PyTorch's kernels: no C++ build on the lease
  export PYTHONPATH=$scratch/site:$PWD GENOMETRACKS_DATA=$PWD/.gpu/data GENOMETRACKS_KERNEL=torch PYTHONUNBUFFERED=1
  # each step's output to $out/NAME; a failed step is recorded and the next one still runs
  step() {
    local name=$1 rc=0
    shift
    "$@" >"$out/$name" 2>&1 || rc=$?
    echo "$name: rc $rc" | tee -a "$out/steps.txt"
    tail -n 3 "$out/$name"
  }
  step gpu.txt bash -c "nvidia-smi -L; $PY -c \"import torch; print('torch', torch.__version__, torch.cuda.get_device_name())\""
  step test_cuda.log $PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
  # a training run as a user starts one on a GPU (trainer=gpu: bf16-mixed), small model, synthetic genome
  step train_smoke.log $PY -m genometracks.cli train experiment=smoke trainer=gpu trainer.max_epochs=1 run_dir="$scratch/smoke"
  step bench_gpu.json $PY scripts/bench.py --device cuda "${GPU_TILES[@]}" --segments 4 --repeats 5 --textbook-repeats 3
  step bench_gpu_genome.json $PY scripts/bench.py --device cuda --genome "${GPU_TILES[@]}" --out "$scratch"
  ! grep -qv "rc 0$" "$out/steps.txt"
  ;;
*)
  echo "usage: bash scripts/gpu_check.sh prepare|run   (see the comment at the top)" >&2
  exit 2
  ;;
esac
