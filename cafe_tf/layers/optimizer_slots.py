"""Finds an optimizer's slot variables for a given variable, with their initial value.

Migration resets the slot rows of a newly promoted hot row (Adam m/v,
Adagrad accumulators, momentum...) to the value a fresh slot starts from.
"""
import tensorflow as tf

# Slot lists of tf_keras optimizers whose fresh value is not zero.
_NONZERO_INITIAL = {"_accumulators": "initial_accumulator_value"}
_LEGACY_NONZERO_INITIAL = {"accumulator": "initial_accumulator_value"}


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
    index_dict = getattr(optimizer, "_index_dict", {})
    index = index_dict.get(optimizer._var_key(variable))
    if index is None:
        return []
    found = []
    for attribute, values in vars(optimizer).items():
        # Slot lists hold one variable per trained variable, in index order.
        if not (isinstance(values, list) and len(values) == len(index_dict)):
            continue
        slot = values[index]
        if isinstance(slot, tf.Variable) and slot.shape == variable.shape:
            found.append((slot, _initial(optimizer, _NONZERO_INITIAL.get(attribute))))
    return found


def _initial(optimizer, attribute):
    return float(getattr(optimizer, attribute)) if attribute else 0.0
