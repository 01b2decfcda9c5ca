#!/usr/bin/env bash
# Run THERE (the GPU machine: Python 3.12 at /opt/torch/.venv with CUDA torch, transformers 5, no network), in the
# repository root with .whl/ carried from here (scripts/gpu/fetch_wheels.sh): a venv that reuses the image's CUDA
# torch (--system-site-packages) and installs over it, from the carried wheels only, what our stack needs at other
# versions or lacks (transformers 4.57 shadows the image's 5.x inside the venv); the import shims of
# scripts/gpu/shims; then this project, editable, without its dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${BASE_PYTHON:-/opt/torch/.venv/bin/python3}
VENV=${VENV:-.venv-gpu}
[ -d .whl ] || { echo "no .whl/ here: run scripts/gpu/fetch_wheels.sh where PyPI is reachable and carry .whl" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$BASE" -m venv --system-site-packages "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp -r scripts/gpu/shims/jieba scripts/gpu/shims/pinyin scripts/gpu/shims/boto3 scripts/gpu/shims/botocore "$SITE/"
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .
"$PY" - <<'PY'
import torch, transformers, textattack  # noqa: F401  (TextAttack needs NLTK_DATA: run_checks.sh sets it)
print(f"venv ready: python {__import__('sys').version.split()[0]}, torch {torch.__version__} "
      f"(CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}), transformers {transformers.__version__}")
PY
