"""Every runnable example under examples/ runs to the end and reports success."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# example: (arguments, lines its output must contain)
CASES = {
    "checkpoint_resume": ([], ["identical: True", "does not match this model"]),
    "export_serving": ([], ["cafe_tf imported = False", "same predictions: True"]),
    "quickstart_tfrs": ([], ["migration promoted ids: True", "test AUC"]),
    "train_mirrored": (
        [],
        [
            "replicas identical (sketch, mapping, tables): True",
            "planted hot users with a hot row: 20 / 20",
        ],
    ),
    "train_multiworker": (
        [],
        ["sketch and hot table identical on every worker: True", "counted all 24000 ids: True"],
    ),
    "tune_budget": (["--max-trials", "2", "--rows-per-day", "3000"], ["2 trials in", "test AUC"]),
}


@pytest.mark.slow
@pytest.mark.timeout(900)  # above the example's own 600 s limit, whose failure shows its output
@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    arguments, expected = CASES[name]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    for line in expected:
        assert line in output, f"{line!r} missing from:\n{output[-4000:]}"
