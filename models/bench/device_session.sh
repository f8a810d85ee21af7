#!/usr/bin/env bash
# One lent-GPU session in one call: the accelerator smoke test, then ResNet VAE training runs that
# share the GPU (the paper's MNIST preset with IAF; the CPU `mnist` preset with IAF and with a
# diagonal posterior at equal minutes), each evaluated on the full test set (IS, 128 draws).
# Everything lands in $WORK, packed into $OUT/device.tgz at the end (inner timeouts keep it in time).
#   MINUTES=5 DATA_DIR=.gpu OUT=/tmp/out bash models/bench/device_session.sh
set -u
OUT=${OUT:-results/device}
WORK=${WORK:-/tmp/device_work}
MINUTES=${MINUTES:-5}
DATA_DIR=${DATA_DIR:-../shared/data}
EVAL_LIMIT=${EVAL_LIMIT:-}
KILL_AFTER=${KILL_AFTER:-540}
PY=${PY:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.2}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1;
  $PY -c "import jax, numpyro, torch; print(jax.__version__, numpyro.__version__, torch.__version__, jax.devices())" 2>&1; } > "$WORK/machine.txt"
cat "$WORK/machine.txt"
extra=()
[ -n "$EVAL_LIMIT" ] && extra+=(--eval-limit "$EVAL_LIMIT")
vae() {  # name, then flags for models.resnet_vae
  local name=$1; shift
  timeout "$KILL_AFTER" $PY -m models.resnet_vae --backend numpyro --dataset mnist --data-dir "$DATA_DIR" \
    --epochs 1000 --minutes "$MINUTES" --log-every 500 --is-samples 128 "${extra[@]}" "$@" \
    --out "$WORK/$name" > "$WORK/$name.log" 2>&1
  echo "$name exit $?" >> "$WORK/machine.txt"
}
vae paper_iaf --preset paper_mnist &
vae mnist_iaf --preset mnist &
vae mnist_diag --preset mnist --flows 0 &
timeout 300 $PY -m models.bench.smoke_accelerator --out "$WORK/smoke" > "$WORK/smoke.log" 2>&1
echo "smoke exit $?" >> "$WORK/machine.txt"
wait
date -u >> "$WORK/machine.txt"
tail -n 3 "$WORK"/*.log
tar czf "$OUT/device.tgz" -C "$WORK" .
