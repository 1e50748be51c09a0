import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

# Two logical CPUs so MirroredStrategy tests run without GPUs. Must happen
# before any op runs.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import cafe_tf  # noqa: E402,F401


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
