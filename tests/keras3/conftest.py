"""The Keras 3 tests (cafe_tf.keras3) run in their own pytest process, without
TF_USE_LEGACY_KERAS, as Keras 3 users run (tf.keras is Keras 3):

    env -u TF_USE_LEGACY_KERAS python -m pytest --confcutdir=tests/keras3 tests/keras3 cafe_tf/keras3

`--confcutdir` keeps tests/conftest.py (the tf_keras suite's, which sets
TF_USE_LEGACY_KERAS=1) from loading. In the tf_keras run this folder is skipped.
"""

import os

if os.environ.get("TF_USE_LEGACY_KERAS"):
    collect_ignore_glob = ["*.py"]
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Two logical CPUs so MirroredStrategy tests run without GPUs; before any op runs.
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
