#!/usr/bin/env bash
# Trainer container entrypoint: claim one GPU that no other trainer replica holds, then run the
# command (`trainer worker`) on that GPU alone.
#
# Why: Compose gives every replica of a scaled service the same device request, so with
# `count: 1` all `docker compose up --scale trainer=N` replicas would get GPU 0
# (docker/compose#11863). Instead every replica sees all GPUs (`count: all`) and takes an
# exclusive flock on a per-GPU lock file in a volume all replicas share. The lock is held by the
# command's own process (the file descriptor survives exec) and is released by the kernel when
# that process ends, so a stopped or crashed worker frees its GPU without any clean-up.
#
# CUDA_VISIBLE_DEVICES already set: no claim (the operator pinned the GPU). No GPU visible: runs
# anyway and says so. More replicas than GPUs: the extra ones wait until a GPU is free.
set -euo pipefail

lock_dir="${EDNAQUERY_GPU_LOCK_DIR:-/var/lib/ednaquery/gpu-locks}"
retry_s="${EDNAQUERY_GPU_RETRY_S:-30}"

if [ "$#" -eq 0 ]; then
  set -- trainer worker
fi

list_gpus() {
  # One id per line: GPU UUIDs from nvidia-smi (stable, and accepted by CUDA_VISIBLE_DEVICES),
  # else device indices from torch in PCI bus order (the order nvidia-smi uses).
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=uuid --format=csv,noheader 2>/dev/null; then
    return 0
  fi
  python -c 'import torch; print("\n".join(str(i) for i in range(torch.cuda.device_count())))' 2>/dev/null || true
}

if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  echo "trainer entrypoint: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES is set; not claiming a GPU" >&2
  exec "$@"
fi

mapfile -t gpus < <(list_gpus | tr -d ' \r' | sed '/^$/d')
if [ "${#gpus[@]}" -eq 0 ]; then
  echo "trainer entrypoint: no GPU visible; running on CPU. Check: docker compose exec trainer nvidia-smi" >&2
  exec "$@"
fi

mkdir -p "$lock_dir"
announced=""
while :; do
  for gpu in "${gpus[@]}"; do
    exec 9>>"$lock_dir/$gpu.lock"
    if flock --nonblock 9; then
      export CUDA_DEVICE_ORDER=PCI_BUS_ID
      export CUDA_VISIBLE_DEVICES="$gpu"
      echo "trainer entrypoint: claimed GPU $gpu" >&2
      exec "$@"
    fi
    exec 9>&-
  done
  if [ -z "$announced" ]; then
    echo "trainer entrypoint: all ${#gpus[@]} GPU(s) are held by other trainer replicas;" \
      "waiting for one to free up (or scale down: docker compose up -d --scale trainer=${#gpus[@]})" >&2
    announced=1
  fi
  sleep "$retry_s"
done
