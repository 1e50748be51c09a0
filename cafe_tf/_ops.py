"""Loads the HotSketch op library, or says clearly why it cannot.

A missing or mismatched library is an import error, unless the environment
sets CAFE_TF_ALLOW_REFERENCE=1: then cafe_tf warns and runs on the pure-TF
reference (same results, slower).
"""
import json
import os
import warnings
from pathlib import Path

import tensorflow as tf

_HERE = Path(__file__).resolve().parent
_REBUILD = ("Rebuild it against the installed TensorFlow with `pip install -e . "
            "--no-build-isolation` (or `python setup.py build_ext --inplace`) in the cafe_tf "
            "checkout.")


class OpLibraryError(ImportError):
    """The compiled HotSketch op library is missing or does not match TensorFlow."""


def _load():
    libraries = sorted(_HERE.glob("_cafe_ops*.so"))
    if not libraries:
        raise OpLibraryError(f"cafe_tf's op library (_cafe_ops*.so) is missing in {_HERE}. "
                             + _REBUILD)
    info_path = _HERE / "_build_info.json"
    built_for = json.loads(info_path.read_text())["tensorflow_version"] if info_path.exists() else None
    if built_for is None:
        raise OpLibraryError(f"cafe_tf's op library in {_HERE} has no build record "
                             "(_build_info.json). " + _REBUILD)
    if built_for != tf.__version__:
        raise OpLibraryError(f"cafe_tf's op library was built for TensorFlow {built_for}, but "
                             f"TensorFlow {tf.__version__} is installed. " + _REBUILD)
    try:
        return tf.load_op_library(str(libraries[-1]))
    except tf.errors.NotFoundError as err:
        raise OpLibraryError(f"cafe_tf's op library {libraries[-1].name} failed to load: {err}. "
                             + _REBUILD) from err


load_error = None
try:
    ops = _load()
except OpLibraryError as err:
    if os.environ.get("CAFE_TF_ALLOW_REFERENCE") != "1":
        raise
    warnings.warn(f"{err} Running on the pure-TF reference (CAFE_TF_ALLOW_REFERENCE=1).")
    ops, load_error = None, err
else:
    tf.no_gradient("CafeSketchInsert")
    tf.no_gradient("CafeSketchQuery")
    tf.no_gradient("CafeSketchMigrate")
    tf.no_gradient("CafeRoute")
