#!/usr/bin/env bash
# Every GPU check in one device call (under 10 minutes on one H100/H200, each setting in its own
# timeout): the GPU tests, a two-process torchrun run when the machine has two GPUs, training
# throughput, compile warm-up and model FLOP utilisation of the CIFAR-10 NCSN++ configuration at
# batch 128 (eager, compiled block by block, bf16), the small fmnist network at batch 128 and 512
# eager and as CUDA graphs (compile's reduce-overhead mode), the host's work per step
# (benchmarks/host_overhead.py on the GPU, eager and as CUDA graphs), and sampling throughput (1
# and 2 steps against the EDM teacher's Heun sampler, with genkit's per-sample noise and the
# per-sample CPU generators it replaced, and each one's draw).
# Figures go to one JSON file, $OUT/gpu.json (OUT defaults to benchmarks/results/gpu).
#
#   bash benchmarks/gpu/run.sh
#
# The machine needs genkit's dependencies; lpips and clean-fid may have to travel as wheels in
# .whl/ (see the device notes of your workplace); they are installed from there when present.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then python3 -m pip install -q --no-index --no-deps .whl/*.whl; fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null || { echo "install failed"; exit 1; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
timeout 75 python3 -m pytest -q -m gpu tests 2>&1 | tail -15 | tee "$OUT/pytest-gpu.txt"
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
  timeout 120 torchrun --standalone --nproc_per_node=2 -m genkit.cli.main train --method ict --preset toy2d \
    --steps 200 --out /tmp/genkit-ddp 2>&1 | tail -3 | tee "$OUT/torchrun.txt"
fi
# one process and one timeout per setting: a slow compile cannot cost the other rows
rm -f "$OUT/train.jsonl"
# limits in seconds: compiling the whole NCSN++ took about 85 s on an H200, a block-by-block compile less
for run in "bf16:eager 60" "bf16:blocks 85"; do  # the whole-model compile: 851 img/s, measured before
  set -- $run
  timeout "$2" python3 benchmarks/gpu/train_throughput.py --batch 128 --settings "$1" --jsonl "$OUT/train.jsonl" 2>&1 | tail -3
done
# the small fmnist network, bound by the host: eager against CUDA graphs (compile's reduce-overhead mode)
# (batch 512 eager: 12.4 steps/s, measured before)
for run in "128 bf16:eager 30" "128 bf16:model:reduce-overhead 80" "512 bf16:model:reduce-overhead 60"; do
  set -- $run
  timeout "$3" python3 benchmarks/gpu/train_throughput.py --preset fmnist --batch "$1" --settings "$2" --jsonl "$OUT/train.jsonl" 2>&1 | tail -3
done
# the host's work per step: the same network at 4 channels on 8x8, where the arithmetic is nothing
rm -f "$OUT/host.jsonl"
timeout 110 python3 benchmarks/host_overhead.py --device cuda --methods ict --compare train.compile=true \
  --compare "train.compile_mode='reduce-overhead'" --jsonl "$OUT/host.jsonl" 2>&1 | tail -3
timeout 90 python3 benchmarks/sampling_throughput.py --net unet --batch 256 --rounds 5 --json "$OUT/sampling.json" 2>&1 | tee "$OUT/sampling.txt"
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
read = lambda name: (out / name).read_text() if (out / name).is_file() else None
lines = lambda name: [json.loads(line) for line in (read(name) or "").splitlines() if line.strip()]
summary = {"gpu": read("nvidia-smi.txt"), "pytest_gpu": read("pytest-gpu.txt"), "torchrun": read("torchrun.txt"),
           "training": lines("train.jsonl"), "host_overhead": lines("host.jsonl"), "sampling": read("sampling.txt"),
           "sampling_figures": json.loads(read("sampling.json")) if read("sampling.json") else None}
(out / "gpu.json").write_text(json.dumps(summary, indent=2))
print("wrote", out / "gpu.json")
PY
