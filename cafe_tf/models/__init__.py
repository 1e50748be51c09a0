"""CTR ranking models (DLRM, DCN) that take any cafe_tf embedding collection."""

from cafe_tf.models.ranking import DCN, DLRM

__all__ = ["DCN", "DLRM"]
