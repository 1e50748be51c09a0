"""Per-feature configuration shared by every embedding collection."""

import dataclasses
from collections.abc import Mapping, Sequence

from cafe_tf.layers.inputs import COMBINERS


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """One categorical feature of an embedding collection.

    Args:
      name: the key of the feature in the input dict (and in the output dict).
      vocabulary_size: how many distinct ids the feature has (or is expected
        to have); it sizes the memory budget. Ids are not bounded by it.
      combiner: how several ids of one example are pooled: "sum", "mean" or "sqrtn".
    """

    name: str
    vocabulary_size: int
    combiner: str = "sum"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"feature name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.vocabulary_size, int) or self.vocabulary_size <= 0:
            raise ValueError(
                f"feature '{self.name}': vocabulary_size must be a positive int, "
                f"got {self.vocabulary_size!r}"
            )
        if self.combiner not in COMBINERS:
            raise ValueError(
                f"feature '{self.name}': combiner must be one of {COMBINERS}, got {self.combiner!r}"
            )


FeaturesLike = Mapping[str, int] | Sequence[FeatureConfig | Mapping]


def as_feature_configs(features: FeaturesLike) -> tuple[FeatureConfig, ...]:
    """Accepts {name: vocabulary_size}, FeatureConfigs, or their dicts (from get_config)."""
    if isinstance(features, Mapping):
        configs = tuple(FeatureConfig(name, int(size)) for name, size in features.items())
    else:
        configs = tuple(f if isinstance(f, FeatureConfig) else FeatureConfig(**f) for f in features)
    if not configs:
        raise ValueError("an embedding collection needs at least one feature")
    names = [f.name for f in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names must be unique, got {names}")
    return configs


def features_to_config(features: Sequence[FeatureConfig]) -> list:
    return [dataclasses.asdict(f) for f in features]
