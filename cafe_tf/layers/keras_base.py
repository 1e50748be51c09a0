"""What cafe_tf's layers need from Keras, for tf_keras (Keras 2).

The layers' logic (routing, embedding, importance, migration, the baselines'
math) is written once, in Keras-independent mixins (`CafeEmbeddingCollectionLogic`,
`HashEmbeddingCollectionLogic`, ...). A concrete layer combines a mixin with a
base class that supplies the few Keras-specific pieces the mixins use:

- `_initializers`: the Keras initializers module (`get`, `serialize`, `Constant`);
- `_new_weight(name, shape, initializer, dtype, trainable)`: a layer weight;
- `_new_state_variable(name, shape, dtype, initial_value)`: a non-trainable
  weight updated identically on every replica (a checkpoint takes the first
  replica's copy), returned as a `tf.Variable` (a Keras 3 variable wraps one),
  which the ops update in place and the logic reads, slices and assigns.

`TfKerasLayer` here is that base for tf_keras; `cafe_tf.keras3` has the Keras 3 one.
"""

import tensorflow as tf
import tf_keras


class TfKerasLayer(tf_keras.layers.Layer):
    """Base of cafe_tf's tf_keras layers: the Keras-specific pieces (module docstring)."""

    _initializers = tf_keras.initializers

    def compute_output_shape(self, input_shape):
        # tf_keras cannot infer it (it calls the layer on float placeholders; ids are ints).
        # Keras 3 traces the call instead, which also gives the outputs' dtype, float32
        # under any dtype policy.
        return self._output_shapes(input_shape)

    def _new_weight(self, name, shape, initializer, dtype=tf.float32, trainable=True):
        return self.add_weight(
            name=name, shape=shape, dtype=dtype, initializer=initializer, trainable=trainable
        )

    def _new_state_variable(self, name, shape, dtype, initial_value):
        return self.add_weight(
            name=name,
            shape=shape,
            dtype=dtype,
            initializer=lambda *_, **__: initial_value(),
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )


def variable_bytes(variables) -> int:
    """Bytes held by `variables` (tf.Variables or Keras 3 variables)."""
    return sum(v.shape.num_elements() * tf.as_dtype(v.dtype).size for v in variables)


def scatter_update(variable, indices, updates):
    """Row update of this replica's own copy (no cross-replica aggregation).

    Migration computes the same update on every replica, so each writes its
    copy directly; `variable.handle` is the local copy in a replica context.
    """
    return tf.raw_ops.ResourceScatterUpdate(
        resource=variable.handle, indices=indices, updates=tf.cast(updates, variable.dtype)
    )


def scatter_add(variable, indices, updates):
    """Adds `updates` to rows `indices` of this replica's own copy of `variable`."""
    return tf.raw_ops.ResourceScatterAdd(
        resource=variable.handle, indices=indices, updates=tf.cast(updates, variable.dtype)
    )


def assign_add(variable, value):
    """Adds `value` to this replica's own copy of `variable`."""
    return tf.raw_ops.AssignAddVariableOp(
        resource=variable.handle, value=tf.cast(value, variable.dtype)
    )


def find_layers(root, layer_class) -> list:
    """Every `layer_class` layer reachable from `root`, `root` included, each once.

    `root` is a tf_keras or Keras 3 model or layer (nested models and layers
    included), or any trackable holding tf_keras layers, such as a
    `tf.train.Checkpoint`.
    """
    if isinstance(root, tf.Module) or not hasattr(root, "_flatten_layers"):
        # tf_keras layers are tf.Modules, reached the way a checkpoint reaches them.
        candidates = [root] + list(tf.train.TrackableView(root).descendants())
    else:  # Keras 3 layers are not tf.Modules, and list their own layers
        candidates = list(root._flatten_layers(include_self=True))
    found = {}
    for obj in candidates:
        if isinstance(obj, layer_class):
            found.setdefault(id(obj), obj)
    return list(found.values())
