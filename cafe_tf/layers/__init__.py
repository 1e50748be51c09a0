"""Keras embedding layers: CAFE and the baselines it is compared with."""
from cafe_tf.layers.cafe_config import CafeConfig
from cafe_tf.layers.cafe_embedding import CafeEmbedding, CafeEmbeddingCollection
from cafe_tf.layers.features import FeatureConfig
