"""`import cafe_tf.keras3` leaves TF_USE_LEGACY_KERAS and tf.keras as they were; one
process can use both APIs; a Keras backend other than TensorFlow is a clear error."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cafe_tf import _compat

ROOT = Path(__file__).resolve().parents[2]


def run_python(code, **env):
    """Runs `code` in a fresh interpreter from the checkout; TF_USE_LEGACY_KERAS and
    KERAS_BACKEND unset unless given."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "KERAS_BACKEND")
    }
    environ.update(TF_CPP_MIN_LOG_LEVEL="2", **env)
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.mark.parametrize(
    "statement", ["import cafe_tf.keras3 as cafe", "from cafe_tf.keras3 import CafeEmbedding"]
)
@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_import_leaves_legacy_keras_setting_and_tf_keras_as_they_were(setting, statement):
    out = run_python(
        f"""
import os, sys
import keras
import tensorflow as tf
{statement}
import tf_keras
print("setting", os.environ.get("TF_USE_LEGACY_KERAS"))
print("keras3", tf.keras.layers.Layer is keras.layers.Layer)
print("tf_keras", tf.keras.layers.Layer is tf_keras.layers.Layer)
print("api", "cafe_tf._tf_keras_api" in sys.modules)
""",
        **({} if setting is None else {"TF_USE_LEGACY_KERAS": setting}),
    )
    assert f"setting {setting}" in out
    # Only TF_USE_LEGACY_KERAS=1 makes tf.keras mean tf_keras.
    assert f"keras3 {setting != '1'}" in out and f"tf_keras {setting == '1'}" in out
    assert "api False" in out  # the tf_keras API was not loaded


def test_one_process_uses_both_apis_in_either_order():
    check = """
ids = tf.constant([[1, 2], [3, 3]])
config = dict(embedding_dim=4, compression_ratio=10)
new = k3.CafeEmbedding(1000, k3.CafeConfig(**config))
old = cafe_tf.CafeEmbedding(1000, cafe_tf.CafeConfig(**config))
assert isinstance(new, keras.layers.Layer) and isinstance(old, tf_keras.layers.Layer)
assert k3.CafeConfig is cafe_tf.CafeConfig
print(new(ids, training=True).shape, old(ids, training=True).shape)
"""
    keras3_first = run_python(
        """
import keras, tensorflow as tf, tf_keras
import cafe_tf.keras3 as k3
import cafe_tf
"""
        + check
    )
    tf_keras_first = run_python(
        """
import cafe_tf
import keras, tensorflow as tf, tf_keras
import cafe_tf.keras3 as k3
assert tf.keras.layers.Layer is tf_keras.layers.Layer  # cafe_tf made tf.keras tf_keras
"""
        + check
    )
    for out in (keras3_first, tf_keras_first):
        assert "(2, 4) (2, 4)" in out


def test_backend_other_than_tensorflow_is_a_clear_error():
    # Keras's other backends need packages this environment lacks (even "numpy" imports
    # jax), so Keras reports one it does not run on.
    out = run_python("""
import keras
keras.backend.backend = lambda: "jax"
try:
    import cafe_tf.keras3
except ImportError as err:
    print(type(err).__name__, err)
""")
    assert "UnsupportedEnvironmentError" in out
    assert "TensorFlow backend" in out and "'jax' backend" in out
    assert "KERAS_BACKEND=tensorflow" in out


@pytest.mark.parametrize(
    "version, backend, message",
    [
        ("2.15.0", "tensorflow", "needs Keras 3, but Keras 2.15.0 is installed"),
        ("3.15.1", "torch", "uses the 'torch' backend"),
    ],
)
def test_check_keras3_names_the_problem(version, backend, message):
    with pytest.raises(_compat.UnsupportedEnvironmentError, match=message):
        _compat.check_keras3(version, backend)
    _compat.check_keras3("3.15.1", "tensorflow")
