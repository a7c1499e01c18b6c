#!/usr/bin/env bash
# All set-up, then the main job on the synthetic demo cohort.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${DEMO_DIR:-demo}
PATIENTS=${DEMO_PATIENTS:-200}
.venv/bin/hccprog synth "$OUT/cohort" --patients "$PATIENTS" --seed 0 --overwrite
.venv/bin/hccprog validate "$OUT/cohort/cohort.yaml"
# CRNN (Rad-D) and RadCLN (crnn+clinical) under 5-fold CV beside the clinical baselines and the
# oracle (the true log-hazard from truth.csv); prints the table and the report's path.
.venv/bin/hccprog train "$OUT/cohort/cohort.yaml" --model crnn --endpoint os --preset cpu \
  --out "$OUT/runs/crnn-os" --cache "$OUT/cache" --oracle "$OUT/cohort/truth.csv:log_hazard_os" --overwrite
