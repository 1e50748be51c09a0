"""cafe_tf.keras3.tuning: a keras-tuner 1.4 search of keras-rs models with cafe_tf.keras3
layers under a memory cap, and keras-tuner's one-Keras-per-process binding."""

import os
import subprocess
import sys
from pathlib import Path

from cafe_tf.keras3 import tuning  # binds keras-tuner to Keras 3: before keras_tuner

# isort: split
import keras
import keras3_models as km
import keras_tuner as kt
import pytest

import cafe_tf.keras3 as cafe
from cafe_tf import _keras_tuner
from cafe_tf import budget as budget_lib

ROOT = Path(__file__).resolve().parents[2]
CAP = 40_000  # bytes; the full tables take 800,000, so the ratio must be >= 20
FULL = budget_lib.full_table_bytes(list(km.VOCABULARY.values()), km.DIM)
SPACE = tuning.CafeSearchSpace(
    embedding_dim=km.DIM,
    compression_ratio=(2.0, 200.0),
    threshold=(1.0, 4.0),
    decay_half_life=(4.0, 16.0),
    fixed={"importance": "frequency"},
)


def _build_model(config):
    embedding = cafe.CafeEmbeddingCollection(km.VOCABULARY, config, name="cafe")
    return km.compile_model(km.ranking_model(embedding, "dot"))


def test_random_search_of_keras_rs_models_under_the_cap(tmp_path):
    assert _keras_tuner.model_class(kt) is keras.Model
    result = tuning.tune(
        _build_model,
        km.dataset(0),
        km.dataset(1, n=512),
        vocabulary_sizes=km.VOCABULARY,
        cap_bytes=CAP,
        space=SPACE,
        tuner="random",
        max_trials=2,
        directory=str(tmp_path),
        seed=3,
    )
    assert [t.status for t in result.trials] == ["COMPLETED"] * 2, [
        t.message for t in result.trials
    ]
    for trial in result.trials:
        assert trial.config.compression_ratio >= FULL / CAP  # the space was bounded
        assert 0 < trial.bytes <= CAP
        # Each trial's copy of Keras 3's CafeMigration drove its own model.
        assert trial.metrics["cafe_hot_occupancy"] > 0
    assert result.best_metric == max(t.metric for t in result.trials)
    best = result.tuner.get_best_models(1)[0]
    assert isinstance(best, keras.Model)
    assert tuning.cafe_bytes(best) == result.best_bytes


def test_cap_exceeded_stops_the_search_before_training(tmp_path):
    def two_layers(config):
        model = _build_model(config)
        model.extra = cafe.CafeEmbeddingCollection(km.VOCABULARY, config, name="extra")
        return model

    hypermodel = tuning.CafeHyperModel(two_layers, km.VOCABULARY, CAP, SPACE)
    with pytest.raises(tuning.CapExceededError, match="over the cap"):
        hypermodel.build(kt.HyperParameters())


def test_keras_tuner_of_another_keras_is_refused_with_the_fix():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    run = subprocess.run(
        [sys.executable, "-c", "import cafe_tf.tuning, cafe_tf.keras3.tuning"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode != 0
    assert (
        "cafe_tf.keras3.tuning tunes Keras 3 models, but keras-tuner 1." in run.stderr
        and "accepts tf_keras models only" in run.stderr
        and "tune models of one Keras per process" in run.stderr
    ), run.stderr[-3000:]
