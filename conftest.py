"""pytest, the tf_keras runs: cafe_tf.keras3's doctests run in the Keras 3 run instead
(tests/keras3/conftest.py; its `--confcutdir=tests/keras3` keeps this file out of it). Its
modules import Keras 3 layers, and cafe_tf.keras3.tuning binds keras-tuner to Keras 3, which a
process whose keras-tuner serves tf_keras (tests/tools/test_tuning.py) refuses."""

collect_ignore = ["cafe_tf/keras3"]
