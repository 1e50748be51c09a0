"""Shapes of public click logs: fields and per-field cardinalities, for synthetic data.

The CAFE paper evaluates on Criteo Kaggle, Avazu and KDD Cup 2012. A
`DataShape` holds what the synthetic generator needs to imitate one of them:
the categorical fields with their number of distinct values and the number of
dense fields.

- "criteo_kaggle": 13 dense + 26 categorical fields, 33.76M distinct values
  (DLRM's per-field counts, `cafe_tf.data.criteo.KAGGLE_CARDINALITIES`).
- "avazu": 22 categorical fields (the hour counted as one), no dense field,
  9,449,445 distinct values over 40.4M rows; the per-field counts sum to it.
- "kdd12": KDD Cup 2012 track 2, 11 categorical fields, no dense field, about
  54.7M distinct values over 149.6M rows. Only the total is published; the
  split over fields follows the track's id tables (query and user ids hold
  most values), scaled to that total: approximate per field.
"""

from typing import NamedTuple

from cafe_tf.data.criteo import CATEGORICAL_FIELDS, DENSE_FIELDS, KAGGLE_CARDINALITIES


class DataShape(NamedTuple):
    """Fields of a click log.

    Attributes:
        name: the shape's name.
        cardinalities: categorical field -> distinct values, in field order.
        num_dense: how many dense (count) fields.
    """

    name: str
    cardinalities: dict[str, int]
    num_dense: int

    @property
    def categorical_fields(self) -> tuple[str, ...]:
        return tuple(self.cardinalities)


SHAPES = {
    shape.name: shape
    for shape in [
        DataShape("criteo_kaggle", dict(KAGGLE_CARDINALITIES), len(DENSE_FIELDS)),
        DataShape(
            "avazu",
            {
                "hour": 240,
                "C1": 7,
                "banner_pos": 7,
                "site_id": 4737,
                "site_domain": 7745,
                "site_category": 26,
                "app_id": 8552,
                "app_domain": 559,
                "app_category": 36,
                "device_id": 2686408,
                "device_ip": 6729486,
                "device_model": 8251,
                "device_type": 5,
                "device_conn_type": 4,
                "C14": 2626,
                "C15": 8,
                "C16": 9,
                "C17": 435,
                "C18": 4,
                "C19": 68,
                "C20": 172,
                "C21": 60,
            },
            0,
        ),
        DataShape(
            "kdd12",
            {
                "DisplayURL": 26283,
                "AdID": 641707,
                "AdvertiserID": 14847,
                "Depth": 3,
                "Position": 3,
                "QueryID": 23921187,
                "KeywordID": 1249785,
                "TitleID": 3835856,
                "DescriptionID": 3171830,
                "UserID": 21838496,
                "Gender": 3,
            },
            0,
        ),
    ]
}
assert tuple(SHAPES["criteo_kaggle"].categorical_fields) == tuple(CATEGORICAL_FIELDS)


def get_shape(name: str) -> DataShape:
    """The `DataShape` called `name` (one of `SHAPES`)."""
    if name not in SHAPES:
        raise ValueError(f"unknown data shape {name!r}; expected one of {sorted(SHAPES)}")
    return SHAPES[name]
