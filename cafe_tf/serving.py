"""Exports a trained model as a SavedModel that serves with stock TensorFlow only.

The SavedModel needs neither cafe_tf nor its op library: while the serving
function is traced, every CAFE layer answers its sketch queries with the
pure-TF reference path (`pure_tf_lookups`), which gives the same rows, and
only inference is traced (no sketch update, no gradient). `export_for_serving`
then reads the written graph back and refuses to return if any cafe_tf op
(`CafeSketch*`) got in.

Example:
  >>> export_for_serving(model, "/tmp/ranker", {  # doctest: +SKIP
  ...     "user": tf.TensorSpec([None], tf.int64),
  ...     "tags": tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1),
  ... })
  >>> served = tf.saved_model.load("/tmp/ranker")       # in any TF process  # doctest: +SKIP
  >>> served.signatures["serving_default"](user=..., tags_values=..., tags_row_lengths=...)  # doctest: +SKIP
  >>> served.serve({"user": ..., "tags": tf.ragged.constant(...)})  # from Python  # doctest: +SKIP
"""

import os
from collections.abc import Mapping

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from cafe_tf.layers.cafe_embedding import find_cafe_layers

# Op types of cafe_tf's op library; none may appear in a serving SavedModel.
CAFE_OP_PREFIX = "Cafe"

Spec = tf.TensorSpec | tf.RaggedTensorSpec | tf.SparseTensorSpec


class ServingExportError(RuntimeError):
    """The exported graph is not servable without cafe_tf (it holds a cafe_tf op)."""


def signature_inputs(input_signature: Mapping[str, Spec]) -> dict[str, tf.TensorSpec]:
    """The flat tensor inputs of the serving signature for `input_signature`.

    A dense feature `f` stays `f`; a ragged one (`[B, None]`, ragged_rank 1)
    becomes `f_values` and `f_row_lengths`; a sparse one becomes `f_indices`,
    `f_values` and `f_dense_shape` (all int64 but the values).
    """
    flat = {}

    def add(key, spec):
        if key in flat:
            raise ValueError(
                f"serving input '{key}' is defined twice: rename the feature "
                f"(features: {sorted(input_signature)})"
            )
        flat[key] = tf.TensorSpec(spec.shape, spec.dtype, key)

    for name, spec in input_signature.items():
        if isinstance(spec, tf.RaggedTensorSpec):
            if spec.ragged_rank != 1 or spec.shape.rank != 2:
                raise ValueError(
                    f"feature '{name}': only [B, None] ragged inputs (ragged_rank "
                    f"1) are supported, got {spec}"
                )
            add(f"{name}_values", tf.TensorSpec([None], spec.dtype))
            add(f"{name}_row_lengths", tf.TensorSpec([None], spec.row_splits_dtype))
        elif isinstance(spec, tf.SparseTensorSpec):
            rank = spec.shape.rank
            add(f"{name}_indices", tf.TensorSpec([None, rank], tf.int64))
            add(f"{name}_values", tf.TensorSpec([None], spec.dtype))
            add(f"{name}_dense_shape", tf.TensorSpec([rank], tf.int64))
        elif isinstance(spec, tf.TensorSpec):
            add(name, spec)
        else:
            raise TypeError(
                f"feature '{name}': expected a TensorSpec, RaggedTensorSpec or "
                f"SparseTensorSpec, got {type(spec).__name__}"
            )
    return flat


def _rebuild(input_signature, flat):
    features = {}
    for name, spec in input_signature.items():
        if isinstance(spec, tf.RaggedTensorSpec):
            features[name] = tf.RaggedTensor.from_row_lengths(
                flat[f"{name}_values"], flat[f"{name}_row_lengths"], validate=True
            )
        elif isinstance(spec, tf.SparseTensorSpec):
            features[name] = tf.SparseTensor(
                flat[f"{name}_indices"], flat[f"{name}_values"], flat[f"{name}_dense_shape"]
            )
        else:
            features[name] = flat[name]
    return features


def _as_output_dict(outputs, output_name):
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"{output_name}_{i}": t for i, t in enumerate(outputs)}
    return {output_name: outputs}


def cafe_ops_in_saved_model(export_dir: str) -> list[str]:
    """Sorted op types of cafe_tf's library found anywhere in a SavedModel's graphs."""
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    found = set()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        nodes = list(graph.node)
        for function in graph.library.function:
            nodes.extend(function.node_def)
        found.update(n.op for n in nodes if n.op.startswith(CAFE_OP_PREFIX))
    return sorted(found)


def export_for_serving(
    model,
    export_dir: str,
    input_signature: Mapping[str, Spec] | Spec,
    output_name: str = "predictions",
    signature_key: str = "serving_default",
) -> str:
    """Writes `model`'s inference function as a SavedModel that needs only stock TF.

    Args:
      model: a built Keras model (or layer) containing CAFE layers, called as
        `model(features, training=False)`: tf_keras, or Keras 3 with `cafe_tf.keras3`
        layers (import `cafe_tf.keras3` before this module in a Keras 3 process).
      export_dir: where to write the SavedModel.
      input_signature: `{feature: spec}` for a model taking a dict of features
        (`tf.TensorSpec`, `tf.RaggedTensorSpec` [B, None] or `tf.SparseTensorSpec`),
        or a single spec of those kinds for a model taking one tensor (its
        signature inputs are then `input`, or `input_values`, ...).
      output_name: output key when the model returns a single tensor.
      signature_key: key of the serving signature.

    Returns:
      `export_dir`. The SavedModel has the signature `signature_key` (flat
      tensors: see `signature_inputs`; outputs a dict) and a function `serve`
      taking the features as the model does (ragged/sparse included), for Python.

    Raises:
      ServingExportError: a cafe_tf op ended up in the exported graph.
    """
    if not getattr(model, "built", True):
        raise ValueError("build the model (call it on a batch) before exporting it")
    single = not isinstance(input_signature, Mapping)
    specs = {"input": input_signature} if single else dict(input_signature)
    flat_specs = signature_inputs(specs)
    layers = find_cafe_layers(model)
    previous = [layer.pure_tf_lookups for layer in layers]

    def infer(features):
        return _as_output_dict(model(features, training=False), output_name)

    def infer_flat(**flat):
        features = _rebuild(specs, flat)
        return infer(features["input"] if single else features)

    try:
        for layer in layers:
            layer.pure_tf_lookups = True
        serve = tf.function(infer, input_signature=[input_signature if single else specs])
        signature = tf.function(infer_flat).get_concrete_function(**flat_specs)
        root = tf.Module()
        root.serve = serve
        # Only the variables are saved, not the Keras objects: their training
        # paths (sketch updates, custom gradients) hold cafe_tf ops.
        root.model_variables = list(model.variables)
        serve.get_concrete_function()  # trace with pure-TF lookups now
        tf.saved_model.save(
            root,
            export_dir,
            signatures={signature_key: signature},
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        )
    finally:
        for layer, value in zip(layers, previous):
            layer.pure_tf_lookups = value
    found = cafe_ops_in_saved_model(export_dir)
    if found:
        raise ServingExportError(
            f"the SavedModel in {export_dir} holds cafe_tf ops {found}; "
            "it would not load without cafe_tf. Are all CAFE layers "
            "among the model's layers?"
        )
    return export_dir
