#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the pinned stack and builds the op library.
# Idempotent and quick when nothing changed: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.cafe_tf_stamp
want=$(cat pyproject.toml setup.py .ci/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  # The pinned runtime and test dependencies, read from pyproject.toml.
  .venv/bin/python - > .venv/requirements.txt <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
  .venv/bin/python -m pip install -q -r .venv/requirements.txt
  # MovieLens-100K ships inside this wheel; its own dependencies are not needed.
  .venv/bin/python -m pip install -q --no-deps recbole==1.2.1
  echo "$want" > "$stamp"
fi
# Build (or rebuild) the op library against the installed TensorFlow; fast when up to date.
ops_stamp=.venv/.cafe_tf_ops_stamp
# pyproject.toml pins the TensorFlow the library is built against.
ops_want=$(cat custom_ops/core/* custom_ops/tf/* setup.py pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$ops_stamp" 2>/dev/null)" != "$ops_want" ] || ! ls cafe_tf/_cafe_ops*.so >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$ops_want" > "$ops_stamp"
fi
