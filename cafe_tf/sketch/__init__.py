"""HotSketch: configuration, the variable-backed sketch and its pure-TF reference."""
from cafe_tf.sketch.config import SketchConfig
from cafe_tf.sketch.hotsketch import HotSketch
from cafe_tf.sketch.reference import (LEVEL_COLD, LEVEL_HOT, LEVEL_MEDIUM, MigrationResult,
                                      SketchTensors)
