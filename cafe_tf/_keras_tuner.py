"""keras-tuner, bound to the Keras whose models a cafe_tf tuning module searches.

keras-tuner checks every built model against one Keras `Model` class, chosen once per
process when `keras_tuner` is first imported: 1.3.x takes `tensorflow.keras` (tf_keras under
`TF_USE_LEGACY_KERAS=1`, which `import cafe_tf` sets), 1.4.x takes what `import keras` gives,
Keras 3 beside TensorFlow >= 2.16, and rejects any other model with `FatalTypeError`.
`cafe_tf.tuning` needs tf_keras, `cafe_tf.keras3.tuning` Keras 3. `bind` imports keras-tuner
for the one asked, or checks the binding of an earlier import and raises ImportError with
the fix instead of letting every trial fail. For tf_keras, keras-tuner 1.4 is imported with
`sys.modules["keras"]` pointed at tf_keras during that import only: it then takes
`tensorflow.keras` like 1.3 (tf_keras has no Keras 3 `version()`), and the process's own
`keras` is put back untouched.
"""

import importlib.metadata
import sys


def _version(package: str) -> tuple:
    return tuple(int(part) for part in importlib.metadata.version(package).split(".")[:2])


def model_class(keras_tuner):
    """The Keras `Model` class `keras_tuner` accepts models of."""
    if hasattr(keras_tuner, "src"):  # 1.4: the Keras of keras_tuner.src.backend
        from keras_tuner.src.backend import keras as bound

        return bound.models.Model
    from keras_tuner.engine import tuner as tuner_engine  # 1.3: tensorflow.keras

    return tuner_engine.keras.models.Model


def bind(keras_module, user: str):
    """`keras_tuner`, checking models against `keras_module.Model`.

    Args:
      keras_module: the `tf_keras` or Keras 3 `keras` module.
      user: the cafe_tf module asking, named in errors.

    Returns:
      The `keras_tuner` module.

    Raises:
      ImportError: keras-tuner was already imported for the other Keras, or this
        keras-tuner cannot serve `keras_module` (Keras 3 needs keras-tuner >= 1.4).
    """
    legacy = keras_module.__name__ == "tf_keras"
    wants = "tf_keras" if legacy else "Keras 3"
    if not legacy and _version("keras-tuner") < (1, 4):
        raise ImportError(
            f"{user} needs keras-tuner >= 1.4 for Keras 3 models (found "
            f"{importlib.metadata.version('keras-tuner')}, which only serves tf.keras): "
            "pip install 'keras-tuner>=1.4,<1.5'"
        )
    first = "keras_tuner" not in sys.modules
    if first and legacy and _version("keras-tuner") >= (1, 4):
        keras = sys.modules.get("keras")
        sys.modules["keras"] = keras_module
        try:
            import keras_tuner
        finally:
            if keras is None:
                del sys.modules["keras"]
            else:
                sys.modules["keras"] = keras
    else:
        import keras_tuner
    if model_class(keras_tuner) is not keras_module.Model:
        fix = (
            f"import {user} before keras_tuner, and tune models of one Keras per process"
            if not first
            else "set TF_USE_LEGACY_KERAS=1 (or import cafe_tf) before tf.keras is first used"
            if legacy
            else "leave TF_USE_LEGACY_KERAS unset"
        )
        raise ImportError(
            f"{user} tunes {wants} models, but keras-tuner {keras_tuner.__version__} in this "
            f"process accepts {'Keras 3' if legacy else 'tf_keras'} models only and would fail "
            f"every trial: {fix}"
        )
    return keras_tuner
