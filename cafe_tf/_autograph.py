"""Keeps autograph from transpiling tf_keras internals (TF 2.16 only).

TF 2.16 lacks the `DoNotConvert("tf_keras")` rule that TF 2.21 ships, so the
first `fit()` in a process spends 14-24 s converting tf_keras code that needs
no conversion. Adding the rule gives
identical results in under a second. User code is still converted.
"""

from tensorflow.python.autograph.core import config as _config


def skip_tf_keras_conversion() -> None:
    rule = _config.DoNotConvert("tf_keras")
    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in _config.CONVERSION_RULES):
        _config.CONVERSION_RULES = (rule,) + tuple(_config.CONVERSION_RULES)
