"""The search of CAFE configurations under a hard memory cap, for either Keras.

`cafe_tf.tuning` (tf_keras models) and `cafe_tf.keras3.tuning` (Keras 3 models) bind
keras-tuner to their Keras (`cafe_tf._keras_tuner`), then import this module: each
subclasses `CafeHyperModelBase` with its Keras's `CafeMigration`, and makes its `tune`
with `make_tune`.

The cap. `cap_bytes` bounds the bytes held by the model's CAFE layers (hot
table, hashed tables, sketch and bookkeeping, as `memory_bytes()` counts them;
optimizer slots and the dense layers are not counted). It is enforced twice,
both times before any training:

1. The search space is bounded: a layer never holds more than its budget,
   `full table bytes / compression_ratio`, so the lowest ratio searched is
   raised to `full / cap_bytes` and every sampled configuration fits. An
   over-cap configuration is therefore never proposed: it costs no trial, is
   never recorded as FAILED (keras-tuner aborts a search after 3 consecutive
   FAILED trials), and never feeds a fake score to Bayesian optimisation.
2. After the model is built, the bytes of all its CAFE layers are checked
   against the cap. This can only fail if the model does not match the
   `vocabulary_sizes` the space was bounded with (say, a second CAFE layer the
   vocabulary omits). That is a setup error that every further trial could
   repeat, so it raises `CapExceededError`, a keras-tuner `FatalError`: the
   search stops at once with the reason, instead of keras-tuner quietly
   marking the trial FAILED and moving on.
"""

import dataclasses
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tf_keras

from cafe_tf import _keras_tuner
from cafe_tf import budget as budget_lib
from cafe_tf.layers.cafe_config import CafeConfig
from cafe_tf.layers.cafe_embedding import CafeEmbeddingCollection, find_cafe_layers
from cafe_tf.layers.features import FeaturesLike, as_feature_configs

if "keras_tuner" not in sys.modules:
    # Imported before either entry module (pytest's doctest collection): serve tf_keras.
    _keras_tuner.bind(tf_keras, "cafe_tf.tuning")
import keras_tuner as kt
from keras_tuner.engine.trial import TrialStatus

# The per-trial metric (best epoch) recording the bytes of the model's CAFE layers.
BYTES_METRIC = "cafe_bytes"
# keras-tuner cannot infer the direction of "auc" metrics.
DEFAULT_OBJECTIVE = kt.Objective("val_auc", direction="max")
TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}
# Knobs whose range may be None: CafeConfig's default (or `fixed`) then applies.
_OPTIONAL_KNOBS = ("hot_share", "threshold", "decay_half_life")
# CafeConfig fields that the search space always sets itself.
_SET_BY_SPACE = frozenset({"embedding_dim", "compression_ratio", "budget_bytes", "multi_level"})


class CapExceededError(kt.errors.FatalValueError):
    """A built model's CAFE layers hold more bytes than the cap (stops the search)."""


@dataclasses.dataclass(frozen=True)
class CafeSearchSpace:
    """Ranges searched for a `CafeConfig`; a range `(low, high)` with `low == high` is fixed.

    Args:
      embedding_dim: D of every CAFE layer (not tuned: it shapes the model).
      compression_ratio: (lowest, highest) full/compressed ratio, sampled
        log-uniformly. The lowest is raised to fit the cap by `within_cap`.
      hot_share: (low, high) share of the budget for the hot part, linear;
        None: CafeConfig's planned hot share for the sampled ratio.
      threshold: (low, high) promotion threshold k, log-uniform; None:
        CafeConfig's planned k, from the hot rows. k is in units of normalised
        importance, so it depends on how much data a feature sees; the default
        range spans the planner's k (2 to 50 on the benchmark data) and the
        paper's 100.
      decay_half_life: (low, high) L, log-uniform: scores halve per L x hot
        rows x k of inserted importance (docs/sketch.md); None: CafeConfig's
        default 8. This, not `decay_rate`, sets how fast the default sketch
        forgets: `decay_rate` only applies with `fixed={"decay_half_life":
        None}` (the paper's decay) or `decay_rule="batches"`.
      multi_level: the choices for multi-level hashing: (False, True) tunes it,
        (False,) or (True,) fixes it.
      fixed: other `CafeConfig` fields, fixed for every trial (e.g.
        {"importance": "frequency"}); may also fix a field whose range is None.

    Example:
      >>> space = CafeSearchSpace(embedding_dim=16, threshold=(2.0, 50.0), multi_level=(False,))  # doctest: +SKIP
      >>> space = space.within_cap(data.vocabulary_sizes, cap_bytes=1 << 20)  # doctest: +SKIP
      >>> space.compression_ratio   # lowest raised so that every budget is <= 1 MiB  # doctest: +SKIP
    """

    embedding_dim: int = 16
    compression_ratio: tuple[float, float] = (2.0, 1000.0)
    hot_share: tuple[float, float] | None = (0.3, 0.9)
    threshold: tuple[float, float] | None = (2.0, 100.0)
    decay_half_life: tuple[float, float] | None = (4.0, 32.0)
    multi_level: tuple[bool, ...] = (False, True)
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.compression_ratio is None:
            raise ValueError("compression_ratio must be a (lowest, highest) range")
        _check_range("compression_ratio", self.compression_ratio, lambda v: v >= 1, ">= 1")
        _check_range("hot_share", self.hot_share, lambda v: 0 < v < 1, "in (0, 1)")
        _check_range("threshold", self.threshold, lambda v: v > 0, "> 0")
        _check_range("decay_half_life", self.decay_half_life, lambda v: v > 0, "> 0")
        if not self.multi_level or not set(self.multi_level) <= {False, True}:
            raise ValueError(
                f"multi_level must be a non-empty tuple of booleans, got {self.multi_level!r}"
            )
        fields = {f.name for f in dataclasses.fields(CafeConfig)}
        for name in self.fixed:
            if name not in fields:
                raise ValueError(f"fixed: {name!r} is not a CafeConfig field")
            if name in _SET_BY_SPACE or (
                name in _OPTIONAL_KNOBS and getattr(self, name) is not None
            ):
                raise ValueError(f"fixed: {name!r} is set by the search space, not by `fixed`")

    def within_cap(self, vocabulary_sizes: FeaturesLike, cap_bytes: int) -> "CafeSearchSpace":
        """This space with the lowest ratio raised so every configuration fits `cap_bytes`.

        Args:
          vocabulary_sizes: the features of every CAFE layer of the model
            ({name: size}, or `FeatureConfig`s): what the ratio compresses.
          cap_bytes: the most bytes the model's CAFE layers may hold.

        Returns:
          The bounded space.

        Raises:
          ValueError: when even the highest ratio exceeds the cap, or when a
            corner of the space (either end of the ratio and hot-share ranges,
            each multi-level choice) has no valid CAFE layout.
        """
        if cap_bytes <= 0:
            raise ValueError(f"cap_bytes must be > 0, got {cap_bytes}")
        features = as_feature_configs(vocabulary_sizes)
        full = budget_lib.full_table_bytes(
            [f.vocabulary_size for f in features], self.embedding_dim
        )
        lowest, highest = self.compression_ratio
        needed = full / cap_bytes  # the budget, full // ratio, is then <= cap_bytes
        if needed > highest:
            raise ValueError(
                f"a cap of {cap_bytes:,} bytes needs a compression ratio of at least "
                f"{needed:.4g} (the full tables take {full:,} bytes), above the highest ratio "
                f"searched ({highest}): raise compression_ratio[1] or the cap"
            )
        bounded = dataclasses.replace(self, compression_ratio=(max(lowest, needed), highest))
        bounded._check_corners(features)
        return bounded

    def _check_corners(self, features) -> None:
        """Plans the layout at the corners, so a too-small budget fails before the search."""
        ratios = sorted(set(self.compression_ratio))
        shares = sorted(set(self.hot_share)) if self.hot_share is not None else [None]
        for ratio in ratios:
            for share in shares:
                for multi_level in self.multi_level:
                    hp = kt.HyperParameters()
                    hp.values.update(compression_ratio=ratio, multi_level=multi_level)
                    if share is not None:
                        hp.values["hot_share"] = share
                    config = config_from_hp(hp, self)
                    try:
                        CafeEmbeddingCollection(features, config, name="cafe_tuning_probe")
                    except ValueError as error:
                        raise ValueError(
                            f"the search space's corner compression_ratio="
                            f"{ratio:.4g}, hot_share={share}, multi_level="
                            f"{multi_level} has no CAFE layout: {error}"
                        ) from error


def _check_range(name, bounds, valid, rule):
    if bounds is None:
        return
    if len(bounds) != 2 or not bounds[0] <= bounds[1] or not all(valid(v) for v in bounds):
        raise ValueError(
            f"{name} must be None or (low, high) with low <= high, both {rule}; got {bounds!r}"
        )


def _float(hp: kt.HyperParameters, name: str, bounds, sampling: str) -> float:
    low, high = bounds
    value = hp.Fixed(name, low) if low == high else hp.Float(name, low, high, sampling=sampling)
    return float(value)


def config_from_hp(hp: kt.HyperParameters, space: CafeSearchSpace) -> CafeConfig:
    """Declares the space's hyperparameters on `hp` and returns their `CafeConfig`.

    Called with a trial's `hp` it returns that trial's configuration; called
    with a fresh `kt.HyperParameters()` it returns the space's defaults (the
    low end of every range, the first multi-level choice).

    Args:
      hp: keras-tuner hyperparameters.
      space: the ranges (use `space.within_cap(...)` to honour a cap).

    Returns:
      A `CafeConfig` with `compression_ratio` set (not `budget_bytes`).

    Example:
      >>> def build(hp):
      ...     return make_model(config_from_hp(hp, space))
    """
    tuned = {"compression_ratio": _float(hp, "compression_ratio", space.compression_ratio, "log")}
    for name, sampling in zip(_OPTIONAL_KNOBS, ("linear", "log", "log")):
        bounds = getattr(space, name)
        if bounds is not None:
            tuned[name] = _float(hp, name, bounds, sampling)
    if len(set(space.multi_level)) == 2:
        tuned["multi_level"] = bool(hp.Boolean("multi_level", default=space.multi_level[0]))
    else:
        tuned["multi_level"] = bool(hp.Fixed("multi_level", space.multi_level[0]))
    return CafeConfig(embedding_dim=space.embedding_dim, **space.fixed, **tuned)


def cafe_bytes(model) -> int:
    """Bytes held by every CAFE layer of `model` (tables, sketch, bookkeeping), a tf_keras
    or a Keras 3 model.

    Before the layers are built this is their planned layout, which is what
    they allocate when built.
    """
    return sum(layer.memory_bytes() for layer in find_cafe_layers(model))


class CafeHyperModelBase(kt.HyperModel):
    """A keras-tuner `HyperModel` over CAFE configurations, with a hard memory cap.

    A subclass names its Keras's `CafeMigration` class (`migration`). Usable with any
    keras-tuner tuner. `build` turns the trial's
    hyperparameters into a `CafeConfig`, calls `build_model` with it and checks
    the model's CAFE bytes against the cap (see the module docstring). `fit`
    adds a `CafeMigration` callback unless one is given (keras-tuner deep-copies
    the given callbacks per trial; CafeMigration finds its layers in
    `set_model`, so each copy drives its own trial's model) and records the
    model's CAFE bytes as the trial metric `cafe_bytes`.

    Args:
      build_model: `(CafeConfig) -> compiled model` (of the subclass's Keras) holding
        CAFE layers built from that config.
      vocabulary_sizes: the features of every CAFE layer of the model.
      cap_bytes: the most bytes the model's CAFE layers may hold.
      space: the ranges searched; default `CafeSearchSpace()`.
      migration_every_n_steps: M of the CafeMigration added when none is given.
      name: the HyperModel's name.

    Attributes:
      space: the space bounded to the cap.

    Example:
      >>> hypermodel = CafeHyperModel(build_model, data.vocabulary_sizes, cap_bytes=1 << 20)  # doctest: +SKIP
      >>> tuner = kt.Hyperband(hypermodel, objective=DEFAULT_OBJECTIVE, max_epochs=3,  # doctest: +SKIP
      ...                      directory="/tmp/hb")
      >>> tuner.search(train, validation_data=validation)  # doctest: +SKIP
    """

    migration: type  # the CafeMigration callback class

    def __init__(
        self,
        build_model: Callable[[CafeConfig], Any],
        vocabulary_sizes: FeaturesLike,
        cap_bytes: int,
        space: CafeSearchSpace | None = None,
        migration_every_n_steps: int = 1,
        name: str = "cafe",
    ):
        super().__init__(name=name)
        self.build_model = build_model
        self.cap_bytes = int(cap_bytes)
        self.space = (space or CafeSearchSpace()).within_cap(vocabulary_sizes, self.cap_bytes)
        self.migration_every_n_steps = migration_every_n_steps

    def build(self, hp: kt.HyperParameters):
        """The model of `hp`'s configuration, refused before training if over the cap.

        Raises:
          CapExceededError: the model's CAFE layers hold more than `cap_bytes`.
          keras_tuner.errors.FatalValueError: the model holds no CAFE layer.
        """
        config = config_from_hp(hp, self.space)
        model = self.build_model(config)
        if not find_cafe_layers(model):
            raise kt.errors.FatalValueError(
                "the model returned by build_model holds no CafeEmbeddingCollection: the "
                "CAFE configuration being tuned is not used"
            )
        held = cafe_bytes(model)
        if held > self.cap_bytes:
            raise CapExceededError(
                f"the model built from {config} holds {held:,} bytes in its CAFE layers, over "
                f"the cap of {self.cap_bytes:,} bytes. The search space keeps every layer "
                "within the cap only if vocabulary_sizes lists the features of every CAFE "
                "layer the model builds from the config"
            )
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """`model.fit` with a `CafeMigration` callback; the history gains `cafe_bytes`."""
        callbacks = list(callbacks or [])
        if not any(isinstance(c, self.migration) for c in callbacks):
            callbacks.append(self.migration(every_n_steps=self.migration_every_n_steps))
        history = model.fit(*args, callbacks=callbacks, **kwargs)
        # Variables exist now: this is what the trained layers really hold.
        history.history[BYTES_METRIC] = [cafe_bytes(model)] * len(history.epoch)
        return history


@dataclasses.dataclass
class TrialResult:
    """One trial of a search.

    Attributes:
      trial_id: keras-tuner's trial id.
      status: "COMPLETED", "FAILED", ... (keras-tuner's `TrialStatus`).
      config: the trial's `CafeConfig`.
      metric: the objective at the trial's best epoch (None unless COMPLETED).
      bytes: bytes held by the trained model's CAFE layers (None unless COMPLETED).
      metrics: every metric logged at the best epoch (CafeMigration's included).
      message: keras-tuner's error message of a failed trial.
    """

    trial_id: str
    status: str
    config: CafeConfig
    metric: float | None
    bytes: int | None
    metrics: dict[str, float]
    message: str | None = None


@dataclasses.dataclass
class TuningResult:
    """What `tune` found.

    Attributes:
      best_config: the `CafeConfig` of the best completed trial.
      best_metric: its objective value.
      best_bytes: bytes held by its CAFE layers.
      objective: the objective's name (e.g. "val_auc").
      cap_bytes: the cap every trial respected.
      trials: every trial, in trial order.
      tuner: the keras-tuner tuner (e.g. for `get_best_models()`).
    """

    best_config: CafeConfig
    best_metric: float
    best_bytes: int
    objective: str
    cap_bytes: int
    trials: list[TrialResult]
    tuner: kt.Tuner

    def format_table(self) -> str:
        """The trials as a fixed-width text table, best first."""
        columns = (
            "trial",
            "status",
            "ratio",
            "hot_share",
            "threshold",
            "half_life",
            "multi",
            "bytes",
            self.objective,
        )
        sign = -1.0 if self.tuner.oracle.objective.direction == "max" else 1.0
        ranked = sorted(self.trials, key=lambda t: (t.metric is None, sign * (t.metric or 0.0)))
        rows = []
        for trial in ranked:
            c = trial.config
            rows.append(
                (
                    trial.trial_id,
                    trial.status,
                    f"{c.compression_ratio:.4g}",
                    _fmt(c.hot_share, ".3f"),
                    _fmt(c.threshold, ".3g"),
                    _fmt(c.decay_half_life, ".3g"),
                    "on" if c.multi_level else "off",
                    _fmt(trial.bytes, ","),
                    _fmt(trial.metric, ".4f"),
                )
            )
        widths = [max(len(str(v)) for v in column) for column in zip(columns, *rows)]
        return "\n".join(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
            for row in [columns, *rows]
        )


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def make_tune(hypermodel_class: type) -> Callable[..., TuningResult]:
    """The `tune` function of a Keras: searches with `hypermodel_class` (a
    `CafeHyperModelBase` subclass)."""

    def tune(
        build_model: Callable[[CafeConfig], Any],
        train_data,
        validation_data=None,
        *,
        vocabulary_sizes: FeaturesLike,
        cap_bytes: int,
        space: CafeSearchSpace | None = None,
        tuner: str = "random",
        max_trials: int = 10,
        epochs: int = 1,
        objective: str | kt.Objective = DEFAULT_OBJECTIVE,
        distribution_strategy=None,
        callbacks: Sequence = (),
        migration_every_n_steps: int = 1,
        directory: str = "cafe_tuning",
        project_name: str = "cafe",
        overwrite: bool = True,
        seed: int | None = None,
        verbose: int = 0,
        tuner_options: Mapping[str, Any] | None = None,
        **fit_kwargs,
    ) -> TuningResult:
        """Searches CAFE configurations under a memory cap and returns the best one.

        Args:
          build_model: `(CafeConfig) -> compiled model` whose CAFE layers are built from
            that config: a tf_keras model (e.g. TFRS) for `cafe_tf.tuning.tune`, a Keras 3
            one (e.g. keras-rs) for `cafe_tf.keras3.tuning.tune`. Called inside
            `distribution_strategy.scope()` when one is given.
          train_data: training data passed to `model.fit` (e.g. a `tf.data.Dataset`).
          validation_data: passed to `model.fit`; needed by "val_*" objectives.
          vocabulary_sizes: the features of every CAFE layer the model builds.
          cap_bytes: the most bytes the model's CAFE layers may hold (tables,
            sketch, bookkeeping; optimizer slots not counted).
          space: the ranges searched; default `CafeSearchSpace()`.
          tuner: "random", "bayesian" (needs scikit-learn) or "hyperband".
          max_trials: trials to run; ignored by "hyperband", whose trial count
            follows from `epochs` (its `max_epochs`) and `factor`.
          epochs: epochs per trial ("hyperband": the most epochs of a trial).
          objective: a `kt.Objective`, or the name of a metric logged by `fit`
            whose direction keras-tuner knows (e.g. "val_loss"); default: maximise
            "val_auc".
          distribution_strategy: e.g. `tf.distribute.MirroredStrategy()`; each
            trial's model is built and trained under it.
          callbacks: extra Keras callbacks, deep-copied per trial. A
            `CafeMigration(every_n_steps=migration_every_n_steps)` is added
            unless one is given.
          migration_every_n_steps: see `callbacks`.
          directory, project_name: where keras-tuner keeps its trials.
          overwrite: start afresh; False resumes a search stored there.
          seed: seeds the tuner's sampling.
          verbose: passed to keras-tuner's display and `model.fit`.
          tuner_options: more keyword arguments of the keras-tuner class (e.g.
            `num_initial_points` for "bayesian", `factor` for "hyperband").
          **fit_kwargs: more `model.fit` arguments (e.g. `steps_per_epoch`).

        Returns:
          A `TuningResult`.

        Raises:
          ValueError: a bad tuner name, a "val_*" objective without validation
            data, or a space/cap without a valid layout.
          CapExceededError: a built model's CAFE layers exceed the cap (the
            vocabulary does not match the model); raised before training.
          RuntimeError: no trial completed (the first failure's message included).

        Example:
          >>> result = tune(build_model, train, validation, vocabulary_sizes=data.vocabulary_sizes,  # doctest: +SKIP
          ...               cap_bytes=1 << 20, tuner="bayesian", max_trials=12,
          ...               directory="/tmp/cafe_tuning")
          >>> print(result.format_table())  # doctest: +SKIP
        """
        if tuner not in TUNERS:
            raise ValueError(f"tuner must be one of {sorted(TUNERS)}, got {tuner!r}")
        objective_name = getattr(objective, "name", objective)
        if validation_data is None and str(objective_name).startswith("val_"):
            # Otherwise every trial would fail to report it and end FAILED.
            raise ValueError(f"the objective {objective_name!r} needs validation_data")
        hypermodel = hypermodel_class(
            build_model, vocabulary_sizes, cap_bytes, space, migration_every_n_steps
        )
        options = dict(tuner_options or {})
        if tuner == "hyperband":
            options.setdefault("max_epochs", epochs)
        else:
            options.setdefault("max_trials", max_trials)
        keras_tuner = TUNERS[tuner](
            hypermodel,
            objective=objective,
            seed=seed,
            distribution_strategy=distribution_strategy,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
            **options,
        )
        keras_tuner.search(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=list(callbacks),
            verbose=verbose,
            **fit_kwargs,
        )
        return collect_results(keras_tuner, hypermodel)

    return tune


def collect_results(keras_tuner: kt.Tuner, hypermodel: CafeHyperModelBase) -> TuningResult:
    """The `TuningResult` of a search run with a `CafeHyperModel` (of either Keras).

    Warns about each trial that did not complete: keras-tuner records failing
    trials as FAILED and returns normally.

    Raises:
      RuntimeError: no trial completed.
    """
    oracle = keras_tuner.oracle
    objective = oracle.objective.name
    trials = []
    for trial in oracle.trials.values():
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        done = trial.status == TrialStatus.COMPLETED
        trials.append(
            TrialResult(
                trial_id=trial.trial_id,
                status=trial.status,
                config=config_from_hp(trial.hyperparameters.copy(), hypermodel.space),
                metric=float(trial.score) if done else None,
                bytes=int(metrics[BYTES_METRIC]) if done else None,
                metrics=metrics,
                message=trial.message,
            )
        )
    failed = [t for t in trials if t.status != TrialStatus.COMPLETED]
    for trial in failed:
        last_line = (trial.message or "").strip().splitlines()[-1:] or ["no message"]
        warnings.warn(
            f"tuning trial {trial.trial_id} ended {trial.status}: {last_line[0]}", stacklevel=2
        )
    if len(failed) == len(trials):
        raise RuntimeError(
            "no tuning trial completed; the first failure was:\n"
            + str(failed[0].message if failed else "no trial ran")
        )
    best_id = oracle.get_best_trials(1)[0].trial_id
    best = next(t for t in trials if t.trial_id == best_id)
    return TuningResult(
        best_config=best.config,
        best_metric=best.metric,
        best_bytes=best.bytes,
        objective=objective,
        cap_bytes=hypermodel.cap_bytes,
        trials=trials,
        tuner=keras_tuner,
    )
