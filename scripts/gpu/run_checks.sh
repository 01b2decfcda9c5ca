#!/usr/bin/env bash
# Run THERE after scripts/gpu/setup.sh, in the repository root: the GPU tests (tests/gpu) and scripts/bench_gpu.py,
# printing every number. One device call: `bash scripts/gpu/setup.sh && bash scripts/gpu/run_checks.sh` with
# .whl carried (about 8 minutes in all; the bench stops starting measurements after BENCH_BUDGET_S seconds).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${VENV:-.venv-gpu}/bin/python
export NLTK_DATA=$PWD/.whl/nltk_data ROBUSTNESS_GPU_FILES=$PWD/.whl ROBUSTNESS_DATA_DIR=$PWD/.whl/data \
       HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "from robustness.provenance import versions; print(versions())"
status=0
"$PY" -m pytest -q -rs -s -p no:cacheprovider tests/gpu || status=1
"$PY" scripts/bench_gpu.py --data-dir .whl/data --budget-s "${BENCH_BUDGET_S:-300}" || status=1
exit $status
