"""Click-log datasets for cafe_tf, all in one batch format (see `cafe_tf.data.batch`).

- `SyntheticCriteo`: the built-in synthetic log (no download), with drift and a known ground
  truth, shaped like Criteo Kaggle, Avazu or KDD12 (`SHAPES`);
- `CriteoTSV`, `CriteoParquet`: readers for real Criteo files;
- `MovieLens100K`: MovieLens-100K ratings as a CTR task (needs `recbole==1.2.1` installed).

Example:
    >>> from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
    >>> data = SyntheticCriteo(SyntheticCriteoConfig(seed=0))
    >>> features, label = next(iter(data.train_dataset(batch_size=128)))
    >>> features["sparse"]["C3"].shape, label.shape
    (TensorShape([128]), TensorShape([128, 1]))
"""

from cafe_tf.data.batch import DENSE_KEY, SPARSE_KEY, CTRData, dataset_from_arrays, pack_batch
from cafe_tf.data.criteo import KAGGLE_CARDINALITIES, MISSING_ID, CriteoParquet, CriteoTSV
from cafe_tf.data.movielens import MovieLens100K
from cafe_tf.data.shapes import SHAPES, DataShape, get_shape
from cafe_tf.data.synthetic import SyntheticChunk, SyntheticCriteo, SyntheticCriteoConfig

__all__ = [
    "DENSE_KEY",
    "SPARSE_KEY",
    "CTRData",
    "dataset_from_arrays",
    "pack_batch",
    "KAGGLE_CARDINALITIES",
    "MISSING_ID",
    "CriteoParquet",
    "CriteoTSV",
    "MovieLens100K",
    "SHAPES",
    "DataShape",
    "get_shape",
    "SyntheticChunk",
    "SyntheticCriteo",
    "SyntheticCriteoConfig",
]
