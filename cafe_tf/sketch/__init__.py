"""HotSketch: configuration, the variable-backed sketch and its pure-TF reference.

- `SketchConfig`: the sketch's sizes and rules;
- `HotSketch`: the sketch in variables, run by the op library or the reference;
- `SketchTensors` and `MigrationResult`: its state and what a migration did, as tensors;
- `LEVEL_COLD`, `LEVEL_MEDIUM`, `LEVEL_HOT`: the levels a query returns.
"""

from cafe_tf.sketch.config import SketchConfig
from cafe_tf.sketch.hotsketch import HotSketch
from cafe_tf.sketch.reference import (
    LEVEL_COLD,
    LEVEL_HOT,
    LEVEL_MEDIUM,
    MigrationResult,
    SketchTensors,
)

__all__ = [
    "HotSketch",
    "LEVEL_COLD",
    "LEVEL_HOT",
    "LEVEL_MEDIUM",
    "MigrationResult",
    "SketchConfig",
    "SketchTensors",
]
