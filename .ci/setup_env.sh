#!/usr/bin/env bash
# Creates one CI environment with the exact versions of its lock and builds the op library
# against its TensorFlow (editable install of this checkout).
#   bash .ci/setup_env.sh          .venv         TensorFlow 2.16.2 + tensorflow-io (.ci/constraints-tf2.16.txt)
#   bash .ci/setup_env.sh tf2.21   .venv-tf2.21  TensorFlow 2.21.0 (.ci/constraints-tf2.21.txt)
# Both can live in one checkout: each builds cafe_tf/_cafe_ops_tf<version>.so for its own
# TensorFlow. Downloads go through pip's cache (PIP_CACHE_DIR), so a second environment or a
# rebuilt one reuses the wheels. Idempotent and quick when nothing changed: stamps record what
# was installed and built.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-tf2.16}
case "$profile" in
  tf2.16) venv=.venv extras=parquet-tfio,tune,bench,test ;;
  tf2.21) venv=.venv-tf2.21 extras=tune,test,keras3 ;;
  *) echo "setup_env.sh: unknown environment '$profile' (tf2.16 or tf2.21)" >&2; exit 2 ;;
esac
lock=.ci/constraints-$profile.txt
PYTHON=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
stamp=$venv/.cafe_tf_stamp
want=$(cat "$lock" .ci/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "${pip[@]}" install -q -r "$lock"
  if [ "$profile" = tf2.16 ]; then
    # MovieLens-100K ships inside this wheel; its own dependencies (torch, ...) are not needed.
    "${pip[@]}" install -q --no-deps recbole==1.2.1
  fi
  echo "$want" > "$stamp"
fi
# Build (or rebuild) the op library against this environment's TensorFlow; the dependencies
# of pyproject.toml must already be met by the lock (--no-index: nothing else is fetched).
tf_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("tensorflow"))')
ops_stamp=$venv/.cafe_tf_ops_stamp
ops_want=$(cat custom_ops/core/* custom_ops/tf/* setup.py pyproject.toml "$lock" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$ops_stamp" 2>/dev/null)" != "$ops_want" ] || [ ! -f "cafe_tf/_cafe_ops_tf$tf_version.so" ]; then
  "${pip[@]}" install -q --no-build-isolation --no-index -c "$lock" -e ".[$extras]"
  echo "$ops_want" > "$ops_stamp"
fi
