#!/bin/bash
# The folder an offline GPU machine needs to run experiments/gpu/tune.sh (a cluster's compute node,
# a lent machine that reaches no package index): the prepared datasets without their caches, an
# MMRec checkout with our install, and wheels of the Python packages `tune` needs beyond a PyTorch
# image, pinned to the versions installed here so both sides write the same journal format.
#   DATA=D MMREC_SRC=path/to/MMRec(.bundle) bash experiments/gpu/bundle.sh FOLDER [DATASET ...]
# Then, on the GPU machine, in this repository, FOLDER inside it or named by its path (docs/tuning.md#on-a-gpu):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site FOLDER/whl/*.whl
#   PYTHONPATH=/tmp/site:$PWD/src PATH=FOLDER/bin:$PATH DATA=FOLDER/D MMREC_ROOT=FOLDER/mmrec \
#     OUT=results LIMIT=420 bash experiments/gpu/tune.sh tiktok:MGCN ...
# Relative FOLDER, DATA and MMREC_SRC are read from the current folder (MMREC_SRC may be a git URL). The machine's PyTorch image
# must hold numpy, scipy, pandas, pyyaml and tqdm (the CUDA images of PyTorch's ecosystem do).
set -euo pipefail
FOLDER=${1:?usage: bundle.sh FOLDER [DATASET ...]}; shift
[ $# -gt 0 ] || set -- tiktok ml-1m
: "${DATA:?set DATA to the folder holding the prepared datasets}" "${MMREC_SRC:?set MMREC_SRC to an MMRec checkout or git bundle}"
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
FOLDER=$(absolute "$FOLDER"); DATA=$(absolute "$DATA")
[ ! -e "$MMREC_SRC" ] || MMREC_SRC=$(absolute "$MMREC_SRC")  # a URL stays as it is
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}; TARGET_PY=${TARGET_PY:-3.12}
mkdir -p "$FOLDER/D" "$FOLDER/whl" "$FOLDER/bin"
for dataset in "$@"; do
  [ -d "$DATA/$dataset" ] || { echo "$DATA/$dataset: not a prepared dataset folder" >&2; exit 2; }
  rm -rf "$FOLDER/D/$dataset"; mkdir -p "$FOLDER/D/$dataset"
  # *.pt: graphs MMRec's models cache beside the data (hundreds of MB); they are rebuilt there
  find "$DATA/$dataset" -maxdepth 1 -type f ! -name '*.pt' -exec cp {} "$FOLDER/D/$dataset/" \;
done
if [ ! -d "$FOLDER/mmrec" ]; then  # cloned and installed aside, so a failed install leaves no half checkout
  rm -rf "$FOLDER/mmrec.partial"
  git clone -q "$MMREC_SRC" "$FOLDER/mmrec.partial"
  "$PYTHON" -m mmrec_ld4mrec.cli install --mmrec-root "$FOLDER/mmrec.partial"
  mv "$FOLDER/mmrec.partial" "$FOLDER/mmrec"
fi
# optuna and what it needs that a PyTorch image lacks, lmdb for the results registry
pins=$("$PYTHON" - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in
               ("optuna", "alembic", "sqlalchemy", "mako", "colorlog", "lmdb")))
EOF
)
# shellcheck disable=SC2086
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$FOLDER/whl" $pins
printf '#!/bin/sh\nexec python3 -m mmrec_ld4mrec.cli "$@"\n' > "$FOLDER/bin/mmrec-ld4mrec"
chmod +x "$FOLDER/bin/mmrec-ld4mrec"
du -sh "$FOLDER"
