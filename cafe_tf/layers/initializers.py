"""Initializer helpers shared by the embedding collections."""


def clone(initializer):
    """A fresh instance of a tf_keras initializer.

    An unseeded initializer instance returns identical values on each call
    (and warns), so every table gets its own instance.
    """
    return initializer.__class__.from_config(initializer.get_config())
