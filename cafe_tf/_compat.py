"""Checks, when cafe_tf is imported, that TensorFlow and Keras are ones it supports.

`import cafe_tf` runs `check_tf_keras_environment`, `import cafe_tf.keras3`
`check_keras3_environment`. They raise `UnsupportedEnvironmentError` (an ImportError)
naming the problem and the fix:

- TensorFlow outside `TENSORFLOW_RANGE` (pip refuses such an install; this catches a forced
  one, say `pip install --no-deps`);
- tf-keras missing or of another minor version than TensorFlow;
- `tf.keras` bound to Keras 3. cafe_tf's layers, and TFRS, are Keras 2 (tf_keras) layers, so
  `tf.keras` must be tf_keras: `import cafe_tf` sets `TF_USE_LEGACY_KERAS=1` unless the
  environment already sets it, which works even after `import tensorflow` or `import keras`
  as long as nothing has used `tf.keras` yet. It cannot take effect once `tf.keras` was
  resolved to Keras 3, nor override `TF_USE_LEGACY_KERAS=0`: then this error says what to
  do. Keras 3 itself (`import keras`) can stay in use in the same process;
- for `cafe_tf.keras3`: Keras other than 3, or a Keras backend other than TensorFlow.
  `cafe_tf.keras3` leaves `TF_USE_LEGACY_KERAS` and `tf.keras` as they are.
"""

import importlib.metadata
import os

import tensorflow as tf

# The TensorFlow versions cafe_tf is built and tested with, as in pyproject.toml (a test
# keeps the two equal): (major, minor) from, inclusive, to, exclusive.
TENSORFLOW_FROM, TENSORFLOW_BELOW = (2, 16), (2, 22)
TENSORFLOW_RANGE = (
    f">={TENSORFLOW_FROM[0]}.{TENSORFLOW_FROM[1]},<{TENSORFLOW_BELOW[0]}.{TENSORFLOW_BELOW[1]}"
)


class UnsupportedEnvironmentError(ImportError):
    """TensorFlow or Keras in this process is not one cafe_tf supports."""


def _major_minor(version: str) -> tuple:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_versions(tensorflow_version: str, tf_keras_version) -> None:
    """Raises unless TensorFlow is in `TENSORFLOW_RANGE` and tf-keras matches its minor.

    Args:
        tensorflow_version: `tf.__version__`, e.g. "2.16.2".
        tf_keras_version: the installed tf-keras version, or None if it is not installed.
    """
    if not TENSORFLOW_FROM <= _major_minor(tensorflow_version) < TENSORFLOW_BELOW:
        raise UnsupportedEnvironmentError(
            f"cafe_tf supports TensorFlow {TENSORFLOW_RANGE}, but TensorFlow "
            f"{tensorflow_version} is installed. Install a supported one with its tf-keras, "
            f"e.g. `pip install 'tensorflow{TENSORFLOW_RANGE}' 'tf-keras{TENSORFLOW_RANGE}'`, "
            "then rebuild cafe_tf's op library (docs/install.md)."
        )
    major, minor = _major_minor(tensorflow_version)
    if tf_keras_version is None or _major_minor(tf_keras_version) != (major, minor):
        found = f"tf-keras {tf_keras_version}" if tf_keras_version else "no tf-keras"
        raise UnsupportedEnvironmentError(
            f"cafe_tf needs the tf-keras matching TensorFlow {tensorflow_version}, but "
            f"{found} is installed: `pip install 'tf-keras=={major}.{minor}.*'`."
        )


def check_tf_keras_binding() -> None:
    """Raises unless `tf.keras` is tf_keras (Keras 2) in this process."""
    import tf_keras

    if tf.keras.layers.Layer is not tf_keras.layers.Layer:
        setting = os.environ.get("TF_USE_LEGACY_KERAS")
        raise UnsupportedEnvironmentError(
            "cafe_tf's layers and TFRS are Keras 2 (tf_keras) layers, but tf.keras is Keras 3 "
            f"in this process (TF_USE_LEGACY_KERAS={setting!r}"
            + (", and tf.keras was used before cafe_tf was imported" if setting == "1" else "")
            + "). Set TF_USE_LEGACY_KERAS=1 in the environment before Python starts, or import "
            "cafe_tf before anything uses tf.keras. Keras 3 itself (`import keras`) may stay in "
            "use beside cafe_tf."
        )


def _tf_keras_version():
    try:
        return importlib.metadata.version("tf-keras")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_keras3(keras_version: str, backend: str) -> None:
    """Raises unless Keras is version 3 on the TensorFlow backend.

    Args:
        keras_version: `keras.__version__`, e.g. "3.15.1".
        backend: `keras.backend.backend()`, e.g. "tensorflow".
    """
    if _major_minor(keras_version)[0] != 3:
        raise UnsupportedEnvironmentError(
            f"cafe_tf.keras3 needs Keras 3, but Keras {keras_version} is installed: "
            "`pip install 'keras>=3'` (cafe_tf's tf_keras layers are `import cafe_tf`)."
        )
    if backend != "tensorflow":
        raise UnsupportedEnvironmentError(
            f"cafe_tf.keras3 runs on Keras 3's TensorFlow backend (its layers use TensorFlow "
            f"ops), but Keras uses the {backend!r} backend in this process. Set "
            "KERAS_BACKEND=tensorflow before keras is first imported."
        )


def check_tf_keras_environment() -> None:
    """The checks of `import cafe_tf`: versions, and tf.keras bound to tf_keras."""
    check_versions(tf.__version__, _tf_keras_version())
    check_tf_keras_binding()


def check_keras3_environment() -> None:
    """The checks of `import cafe_tf.keras3`: versions (its layers share their logic with
    the tf_keras ones), and Keras 3 on the TensorFlow backend. tf.keras is not looked at."""
    import keras

    check_versions(tf.__version__, _tf_keras_version())
    check_keras3(keras.__version__, keras.backend.backend())
