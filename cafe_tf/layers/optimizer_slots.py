"""Finds an optimizer's slot variables for a given variable, with their initial value.

Migration resets the slot rows of a newly promoted hot row (Adam m/v,
Adagrad accumulators, momentum...) to the value a fresh slot starts from, and
sets its moving-average copy (`use_ema=True`) to the row's new value.
"""
from typing import Optional

import tensorflow as tf

# The tf_keras optimizer's per-variable moving averages (use_ema=True): not a slot.
_MOVING_AVERAGES = "_model_variables_moving_average"
# Slot lists of tf_keras optimizers whose fresh value is not zero.
_NONZERO_INITIAL = {"_accumulators": "initial_accumulator_value"}
_LEGACY_NONZERO_INITIAL = {"accumulator": "_initial_accumulator_value"}


def slots_for(optimizer, variable):
    """[(slot_variable, initial_value)] of `optimizer` for `variable`.

    Empty when there is no optimizer or it has not created slots for the
    variable yet (nothing to reset then). Works for tf_keras optimizers
    (new and legacy) and under distribution strategies.
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


def moving_average_for(optimizer, variable) -> Optional[tf.Variable]:
    """The moving-average copy of `variable` kept by a tf_keras optimizer built
    with `use_ema=True`, or None."""
    for attribute, average in _per_variable_lists(optimizer, variable):
        if attribute == _MOVING_AVERAGES:
            return average
    return None


def _per_variable_lists(optimizer, variable):
    """(attribute, its entry for `variable`) over the new tf_keras optimizer's lists
    that hold one variable per trained variable, in index order."""
    index_dict = getattr(optimizer, "_index_dict", None)  # None: no optimizer, or legacy
    index = index_dict.get(optimizer._var_key(variable)) if index_dict else None
    if index is None:
        return []
    found = []
    for attribute, values in vars(optimizer).items():
        if not (isinstance(values, list) and len(values) == len(index_dict)):
            continue
        entry = values[index]
        if isinstance(entry, tf.Variable) and entry.shape == variable.shape:
            found.append((attribute, entry))
    return found


def _initial(optimizer, attribute):
    return float(getattr(optimizer, attribute)) if attribute else 0.0
