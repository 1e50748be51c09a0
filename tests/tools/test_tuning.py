"""cafe_tf.tuning: keras-tuner searches of CAFE configurations under a memory cap, with
keras-tuner 1.3 (TF 2.16 lock) or 1.4 (TF 2.21 lock) bound to tf_keras."""

import importlib.metadata
import os
import subprocess
import sys

from cafe_tf import tuning  # binds keras-tuner to tf_keras: before keras_tuner

# isort: split
import keras_tuner as kt
import model_utils as mu
import numpy as np
import pytest
import tf_keras

from cafe_tf import _keras_tuner
from cafe_tf import budget as budget_lib
from cafe_tf.callbacks import CafeMigration
from cafe_tf.data import dataset_from_arrays
from cafe_tf.layers import CafeEmbeddingCollection
from cafe_tf.models import DLRM
from cafe_tf.tuning import (
    CafeHyperModel,
    CafeSearchSpace,
    CapExceededError,
    cafe_bytes,
    config_from_hp,
    tune,
)

KERAS_TUNER = tuple(int(p) for p in importlib.metadata.version("keras-tuner").split(".")[:2])

VOCABULARY = {"u": 20_000, "v": 20_000}
DIM = 8
CAP = 12_000  # bytes; the full tables take 1,280,000, so the ratio must be >= 106.7
FULL = budget_lib.full_table_bytes(list(VOCABULARY.values()), DIM)
# The lowest ratio reaches far below what the cap allows: within_cap must raise it.
SPACE = CafeSearchSpace(
    embedding_dim=DIM,
    compression_ratio=(2.0, 400.0),
    threshold=(2.0, 8.0),
    decay_half_life=(4.0, 16.0),
    fixed={"importance": "frequency"},
)


def _arrays(seed, n):
    """Ids 0..9 of "u" are frequent and decide the label; everything else is noise."""
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    u = np.where(hot, rng.integers(0, 10, n), rng.integers(10, 20_000, n))
    v = rng.integers(0, 20_000, n)
    label = np.where(hot, u % 2 == 0, rng.random(n) < 0.3)
    return rng.normal(size=(n, 2)), np.stack([u, v], 1), label


def _dataset(seed, n=512):
    return dataset_from_arrays(*_arrays(seed, n), ["u", "v"], batch_size=128)


TRAIN, VALIDATION = _dataset(0), _dataset(1, n=256)


def _build_model(config):
    model = DLRM(
        CafeEmbeddingCollection(VOCABULARY, config, name="cafe"),
        embedding_dim=DIM,
        bottom_units=(8,),
        top_units=(8,),
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(0.05))
    return model


def _tune(tmp_path, **kwargs):
    kwargs.setdefault("max_trials", 2)
    return tune(
        _build_model,
        TRAIN,
        VALIDATION,
        vocabulary_sizes=VOCABULARY,
        cap_bytes=CAP,
        space=SPACE,
        directory=str(tmp_path),
        seed=3,
        **kwargs,
    )


def _check_trials(result, count):
    assert [t.status for t in result.trials] == ["COMPLETED"] * count, [
        t.message for t in result.trials
    ]
    for trial in result.trials:
        # The space was bounded, so no over-cap configuration was ever proposed or trained.
        assert trial.config.compression_ratio >= FULL / CAP
        assert 0 < trial.bytes <= CAP
        # Hot rows are filled only by promotions: each trial's own copy of the migration
        # callback drove its model (a resumed Hyperband trial also restored them).
        assert trial.metrics["cafe_hot_occupancy"] > 0
    assert result.best_bytes <= CAP
    assert result.best_metric == max(t.metric for t in result.trials)


def test_random_search_with_a_given_migration_callback(tmp_path):
    migration = CafeMigration(every_n_steps=2)
    result = _tune(tmp_path, tuner="random", max_trials=3, callbacks=[migration])
    _check_trials(result, 3)
    assert migration.model is None  # only its deep copies were attached to models
    assert len({t.config for t in result.trials}) == 3
    table = result.format_table()
    assert table.splitlines()[0].split()[-1] == "val_auc" and len(table.splitlines()) == 4


def test_bayesian_search_under_mirrored_strategy(tmp_path):
    strategy = mu.mirrored_strategy()  # one per process: see its docstring
    # The second trial comes from the Gaussian process fitted to the first.
    result = _tune(
        tmp_path,
        tuner="bayesian",
        tuner_options={"num_initial_points": 1},
        distribution_strategy=strategy,
    )
    _check_trials(result, 2)
    model = result.tuner.get_best_models(1)[0]
    assert model.distribute_strategy is strategy
    assert cafe_bytes(model) == result.best_bytes


@pytest.mark.slow  # 5 trials, 2 epochs: about a third of this file's time
def test_hyperband_search_resumes_trials_from_checkpoints(tmp_path):
    result = _tune(tmp_path, tuner="hyperband", epochs=2, tuner_options={"factor": 2})
    _check_trials(result, len(result.trials))
    hps = [result.tuner.oracle.trials[t.trial_id].hyperparameters for t in result.trials]
    assert any("tuner/trial_id" in hp for hp in hps)  # a second round resumed a first


def test_over_cap_model_is_rejected_before_training(tmp_path):
    built = []

    def build_two_layers(config):
        # A second CAFE layer that the vocabulary given to the search omits.
        model = _build_model(config)
        model.extra = CafeEmbeddingCollection(VOCABULARY, config, name="extra")
        built.append(model)
        return model

    with pytest.raises(CapExceededError, match="over the cap"):
        tune(
            build_two_layers,
            TRAIN,
            VALIDATION,
            vocabulary_sizes=VOCABULARY,
            cap_bytes=CAP,
            space=SPACE,
            directory=str(tmp_path),
            max_trials=2,
        )
    assert built and all(m.optimizer.iterations.numpy() == 0 for m in built)
    # Listing the features of both layers bounds the ratio for their total.
    both = {**VOCABULARY, **{f"extra_{name}": size for name, size in VOCABULARY.items()}}
    hypermodel = CafeHyperModel(build_two_layers, both, CAP, SPACE)
    assert cafe_bytes(hypermodel.build(kt.HyperParameters())) <= CAP


def test_space_is_bounded_by_the_cap_and_validated():
    bounded = SPACE.within_cap(VOCABULARY, CAP)
    assert bounded.compression_ratio == (FULL / CAP, 400.0)
    assert SPACE.within_cap(VOCABULARY, FULL).compression_ratio == (2.0, 400.0)
    config = config_from_hp(kt.HyperParameters(), bounded)  # the defaults: lowest ratio
    assert CafeEmbeddingCollection(VOCABULARY, config).memory_bytes() <= CAP
    assert config.importance == "frequency" and config.multi_level is False
    # The tuned decay is the half-life the default sketch uses (decay_rate it ignores).
    assert config.decay_half_life == SPACE.decay_half_life[0]
    with pytest.raises(ValueError, match="at least 3200"):
        SPACE.within_cap(VOCABULARY, 400)  # needs ratio 3200 > 400
    with pytest.raises(ValueError, match="no CAFE layout"):
        CafeSearchSpace(embedding_dim=DIM, compression_ratio=(2.0, 20_000.0)).within_cap(
            VOCABULARY, CAP
        )
    with pytest.raises(ValueError, match="set by the search space"):
        CafeSearchSpace(fixed={"threshold": 3.0})
    with pytest.raises(ValueError, match="hot_share"):
        CafeSearchSpace(hot_share=(0.5, 1.5))
    with pytest.raises(ValueError, match="needs validation_data"):
        tune(_build_model, TRAIN, vocabulary_sizes=VOCABULARY, cap_bytes=CAP)


def test_hypermodel_refuses_a_model_without_cafe_layers():
    def no_cafe(config):
        return tf_keras.Sequential([tf_keras.layers.Dense(1)])

    hypermodel = CafeHyperModel(no_cafe, VOCABULARY, CAP, SPACE)
    with pytest.raises(kt.errors.FatalError, match="no CafeEmbeddingCollection"):
        hypermodel.build(kt.HyperParameters())


def test_a_search_where_no_trial_completes_raises(tmp_path):
    def uncompiled(config):  # fit() refuses it: keras-tuner alone would just mark it FAILED
        return DLRM(CafeEmbeddingCollection(VOCABULARY, config), embedding_dim=DIM)

    with (
        pytest.raises(RuntimeError, match="no tuning trial completed"),
        pytest.warns(UserWarning, match="ended FAILED"),
    ):
        tune(
            uncompiled,
            TRAIN,
            VALIDATION,
            vocabulary_sizes=VOCABULARY,
            cap_bytes=CAP,
            space=SPACE,
            directory=str(tmp_path),
            max_trials=1,
        )


def test_keras_tuner_is_bound_to_tf_keras_and_the_process_keeps_its_keras():
    assert _keras_tuner.model_class(kt) is tf_keras.Model
    assert tuning.CafeHyperModel.migration is CafeMigration
    # keras-tuner 1.4 was imported with sys.modules["keras"] lent to tf_keras, then given back.
    assert sys.modules.get("keras") is not tf_keras
    import keras

    assert keras.version().startswith("3.")


def test_keras_tuner_imported_for_keras_3_first_is_refused_with_the_fix():
    run = subprocess.run(
        [sys.executable, "-c", "import keras_tuner, cafe_tf.tuning"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if KERAS_TUNER < (1, 4):  # 1.3 follows tf.keras, tf_keras here: nothing to refuse
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode != 0
        assert (
            "cafe_tf.tuning tunes tf_keras models, but keras-tuner 1." in run.stderr
            and "accepts Keras 3 models only" in run.stderr
            and "import cafe_tf.tuning before keras_tuner" in run.stderr
        ), run.stderr
