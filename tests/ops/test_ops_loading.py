"""The op library loader says clearly what is wrong and how to rebuild."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from cafe_tf import _ops


def test_missing_library(tmp_path, monkeypatch):
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(
        _ops.OpLibraryError,
        match=f"_cafe_ops_tf{re.escape(tf.__version__)}.so .*is missing.*Rebuild",
    ):
        _ops._load()


def test_library_built_for_another_tensorflow_names_both_versions(tmp_path, monkeypatch):
    shutil.copy(_ops.library_path(_ops._HERE, tf.__version__), tmp_path / "_cafe_ops_tf2.15.1.so")
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(_ops.OpLibraryError) as error:
        _ops._load()
    message = str(error.value)
    assert f"built for TensorFlow 2.15.1, but TensorFlow {tf.__version__} is installed" in message
    assert "pip install --no-build-isolation -e ." in message  # the rebuild command


def test_library_that_does_not_load_is_reported(tmp_path, monkeypatch):
    _ops.library_path(tmp_path, tf.__version__).write_bytes(b"not a shared library")
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(
        _ops.OpLibraryError,
        match=f"failed to load in TensorFlow {re.escape(tf.__version__)}.*Rebuild",
    ):
        _ops._load()


def test_installed_library_is_the_one_named_for_this_tensorflow():
    # setup.py builds it under the name the loader looks for.
    assert _ops.library_path(_ops._HERE, tf.__version__).is_file()
    assert _ops.ops is not None and _ops.load_error is None
    assert hasattr(_ops.ops, "cafe_sketch_insert")


def _copy_without_library(tmp_path):
    package = Path(_ops.__file__).resolve().parent
    shutil.copytree(
        package, tmp_path / "cafe_tf", ignore=shutil.ignore_patterns("_cafe_ops*.so", "__pycache__")
    )
    return {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}


SCRIPT = """
import cafe_tf, tensorflow as tf
from cafe_tf.sketch import HotSketch, SketchConfig
assert cafe_tf.__file__.startswith({root!r}), cafe_tf.__file__
sketch = HotSketch(SketchConfig(num_buckets=4, hot_rows=4, threshold=2.0))
sketch.insert(tf.constant([1, 1, 2], tf.int64))
fingerprints = sketch.migrate().promoted_fingerprints.numpy().tolist()
print(sketch.backend, fingerprints == cafe_tf.hashing.fingerprint(tf.constant([1], tf.int64)).numpy().tolist())
"""


def test_import_without_library_fails_clearly_unless_reference_is_allowed(tmp_path):
    env = _copy_without_library(tmp_path)
    script = SCRIPT.format(root=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and "OpLibraryError" in run.stderr and "Rebuild" in run.stderr
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "CAFE_TF_ALLOW_REFERENCE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["reference", "True"]  # key 1 promoted
    assert "CAFE_TF_ALLOW_REFERENCE=1" in run.stderr  # the warning says why
