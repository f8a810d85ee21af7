#!/bin/bash
# The CPU result of docs/benchmarks/vae.md: the ResNet VAE with an IAF posterior and with a diagonal
# one, NumPyro, the same preset and steps, one core each, side by side; each run is killed once
# after INTERRUPT seconds and resumed with the same command (--resume auto), as a restarted job is.
#   DATA_DIR=../shared/data STEPS=25000 INTERRUPT=1200 bash models/resnet_vae/cpu_runs.sh
#   python -m models.bench.resnet_vae_cpu_report --runs results/resnet_vae/cpu_iaf results/resnet_vae/cpu_diag ...
set -u
DATA_DIR=${DATA_DIR:-../shared/data}
STEPS=${STEPS:-25000}
INTERRUPT=${INTERRUPT:-1200}
PY=${PY:-.venv/bin/python}

run() {  # core name flows
  local out=results/resnet_vae/cpu_$2
  mkdir -p "$out"
  local cmd="taskset -c $1 $PY -m models.resnet_vae --backend numpyro --dataset mnist --data-dir $DATA_DIR \
--preset mnist --hidden 24 --zdim 8 --iaf-hidden 32 --batch-size 32 --free-bits 0.1 --flows $3 --epochs 100 \
--max-steps $STEPS --log-every 250 --is-samples 16 --threads 1 --out $out --figures --resume auto"
  echo "# $(date -u) start: $cmd" >> "$out/log.txt"
  timeout "$INTERRUPT" $cmd >> "$out/log.txt" 2>&1
  local rc=$?
  echo "# $(date -u) interrupted (timeout $INTERRUPT s, rc $rc); resuming with the same command" >> "$out/log.txt"
  $cmd >> "$out/log.txt" 2>&1
  rc=$?
  echo "# $(date -u) done rc $rc" >> "$out/log.txt"
}

run 0 iaf 1 &
run 1 diag 0 &
wait
