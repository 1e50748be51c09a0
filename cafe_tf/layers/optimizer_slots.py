"""Finds an optimizer's slot variables for a given variable, with their initial value.

Migration resets the slot rows of a newly promoted hot row (Adam m/v,
Adagrad accumulators, momentum...) to the value a fresh slot starts from, and
sets its moving-average copy (`use_ema=True`) to the row's new value.
"""

import tensorflow as tf

# The optimizer's per-variable moving averages (use_ema=True): not a slot.
_MOVING_AVERAGES = "_model_variables_moving_average"
# Keras 3 optimizers' lists of the trained variables themselves: not slots either.
_TRAINED = ("_trainable_variables", "_variables")
# Slot lists of tf_keras and Keras 3 optimizers whose fresh value is not zero.
_NONZERO_INITIAL = {"_accumulators": "initial_accumulator_value"}
_LEGACY_NONZERO_INITIAL = {"accumulator": "_initial_accumulator_value"}


def slots_for(optimizer, variable):
    """[(slot_variable, initial_value)] of `optimizer` for `variable`.

    Empty when there is no optimizer or it has not created slots for the
    variable yet (nothing to reset then). Works for tf_keras optimizers
    (new and legacy), Keras 3 optimizers, and under distribution strategies.
    """
    if optimizer is None:
        return []
    if hasattr(optimizer, "get_slot_names"):  # legacy OptimizerV2
        found = []
        for name in optimizer.get_slot_names():
            try:
                slot = optimizer.get_slot(variable, name)
            except (KeyError, ValueError):
                continue
            found.append((slot, _initial(optimizer, _LEGACY_NONZERO_INITIAL.get(name))))
        return found
    found = []
    for attribute, slot in _per_variable_lists(optimizer, variable):
        if attribute != _MOVING_AVERAGES:
            found.append((slot, _initial(optimizer, _NONZERO_INITIAL.get(attribute))))
    return found


def moving_average_for(optimizer, variable) -> tf.Variable | None:
    """The moving-average copy of `variable` kept by a tf_keras or Keras 3 optimizer
    built with `use_ema=True`, or None."""
    for attribute, average in _per_variable_lists(optimizer, variable):
        if attribute == _MOVING_AVERAGES:
            return average
    return None


def _per_variable_lists(optimizer, variable):
    """(attribute, its entry for `variable`) over the optimizer's lists that hold one
    variable per trained variable, in index order (new tf_keras or Keras 3 optimizers)."""
    # None: no optimizer, or a legacy one. Keras 3 names the index differently.
    index_dict = getattr(optimizer, "_index_dict", None) or getattr(
        optimizer, "_trainable_variables_indices", None
    )
    index = index_dict.get(optimizer._var_key(variable)) if index_dict else None
    if index is None:
        return []
    found = []
    for attribute, values in vars(optimizer).items():
        if not (isinstance(values, list) and len(values) == len(index_dict)) or (
            attribute in _TRAINED
        ):
            continue
        entry = values[index]
        # A tf.Variable or a Keras 3 variable (which wraps one): both have a handle. The
        # class is asked, since a distributed variable's handle raises across replicas.
        if hasattr(type(entry), "handle") and entry.shape == variable.shape:
            found.append((attribute, entry))
    return found


def _initial(optimizer, attribute):
    return float(getattr(optimizer, attribute)) if attribute else 0.0
