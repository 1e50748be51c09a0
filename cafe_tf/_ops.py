"""Loads the HotSketch op library, or says clearly why it cannot.

The library is compiled against the TensorFlow installed when cafe_tf is installed
(setup.py) and named after it, `_cafe_ops_tf<version>.so`: a library only loads in
the TensorFlow it was built for. A missing or mismatched library is an import
error naming both versions and the rebuild command, unless the environment sets
CAFE_TF_ALLOW_REFERENCE=1: then cafe_tf warns and runs on the pure-TF reference
(same results, slower).
"""

import os
import warnings
from pathlib import Path

import tensorflow as tf

_HERE = Path(__file__).resolve().parent
# setup.py builds the library under this name (tests/ops/test_ops_loading.py checks they agree).
LIBRARY_NAME = "_cafe_ops_tf{version}.so"
_REBUILD = (
    "Rebuild it against the installed TensorFlow: in a cafe_tf checkout run `pip install "
    "--no-build-isolation -e .`; otherwise reinstall cafe_tf from source with `pip "
    "install --no-build-isolation --no-binary cafe_tf --no-cache-dir --force-reinstall "
    "--no-deps cafe_tf` (docs/install.md)."
)


class OpLibraryError(ImportError):
    """The compiled HotSketch op library is missing or does not match TensorFlow."""


def library_path(folder: Path, tf_version: str) -> Path:
    """Where in `folder` the op library built for `tf_version` lives."""
    return folder / LIBRARY_NAME.format(version=tf_version)


def _built_for(folder: Path) -> list:
    """TensorFlow versions of the op libraries present in `folder`."""
    prefix, suffix = LIBRARY_NAME.split("{version}")
    return sorted(p.name[len(prefix) : -len(suffix)] for p in folder.glob(f"{prefix}*{suffix}"))


def _load():
    path = library_path(_HERE, tf.__version__)
    if not path.exists():
        others = _built_for(_HERE)
        if others:
            raise OpLibraryError(
                f"cafe_tf's op library in {_HERE} was built for TensorFlow {', '.join(others)}, "
                f"but TensorFlow {tf.__version__} is installed ({path.name} is missing). "
                + _REBUILD
            )
        raise OpLibraryError(
            f"cafe_tf's op library {path.name} (for TensorFlow "
            f"{tf.__version__}) is missing in {_HERE}. " + _REBUILD
        )
    try:
        return tf.load_op_library(str(path))
    except tf.errors.NotFoundError as err:
        raise OpLibraryError(
            f"cafe_tf's op library {path.name} failed to load in TensorFlow "
            f"{tf.__version__}: {err}. " + _REBUILD
        ) from err


load_error = None
try:
    ops = _load()
except OpLibraryError as err:
    if os.environ.get("CAFE_TF_ALLOW_REFERENCE") != "1":
        raise
    warnings.warn(
        f"{err} Running on the pure-TF reference (CAFE_TF_ALLOW_REFERENCE=1).", stacklevel=2
    )
    ops, load_error = None, err
else:
    tf.no_gradient("CafeSketchInsert")
    tf.no_gradient("CafeSketchQuery")
    tf.no_gradient("CafeSketchMigrate")
    tf.no_gradient("CafeRoute")
    tf.no_gradient("CafeSegmentRowSums")
    tf.no_gradient("CafePairImportance")
    tf.no_gradient("CafeExpandGradient")
