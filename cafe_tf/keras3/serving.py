"""SavedModels of Keras 3 models with `cafe_tf.keras3` layers that serve with stock
TensorFlow: `cafe_tf.serving`'s export, which takes tf_keras and Keras 3 models alike,
imported here without loading cafe_tf's tf_keras API (which would make `tf.keras` mean
tf_keras).

Example:
  >>> from cafe_tf.keras3.serving import export_for_serving
  >>> export_for_serving(model, "/tmp/ranker", {  # doctest: +SKIP
  ...     "user": tf.TensorSpec([None], tf.int64), "numeric": tf.TensorSpec([None, 2])})
  >>> tf.saved_model.load("/tmp/ranker").serve(features)  # in any TF process  # doctest: +SKIP
"""

from cafe_tf.serving import (
    ServingExportError,
    cafe_ops_in_saved_model,
    export_for_serving,
    signature_inputs,
)

__all__ = [
    "ServingExportError",
    "cafe_ops_in_saved_model",
    "export_for_serving",
    "signature_inputs",
]
