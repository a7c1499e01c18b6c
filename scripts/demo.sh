#!/usr/bin/env bash
# All set-up, then the main job on the synthetic demo cohort.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${DEMO_DIR:-demo}
PATIENTS=${DEMO_PATIENTS:-200}
.venv/bin/hccprog synth "$OUT/cohort" --patients "$PATIENTS" --seed 0 --overwrite
.venv/bin/hccprog validate "$OUT/cohort/cohort.yaml"
# Clinical baselines (HCC scores, penalised Cox, fusion) under 5-fold CV; prints the report's path.
.venv/bin/hccprog baselines "$OUT/cohort/cohort.yaml" --endpoint os --out "$OUT/runs/baselines-os" \
  --repeats 1 --overwrite
