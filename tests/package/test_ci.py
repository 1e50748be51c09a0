""".ci/run: a test that dies or hangs ends the run promptly, named; the machine line it prints."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]

DIES = """
import os


def test_aborts():
    os.abort()


def test_after_the_abort():
    pass
"""

# Waits inside TensorFlow's C++ code, as a deadlocked collective would: SIGALRM alone
# (pytest-timeout's "signal" method) never ends it.
HANGS = """
import pytest
import tensorflow as tf


@pytest.mark.timeout(3)
def test_waits_past_its_limit():
    tf.queue.FIFOQueue(1, tf.int32).dequeue()  # nothing is ever enqueued
"""


def ci_checkout(root):
    """A copy of what .ci/run needs under `root`, with this interpreter as its `.venv` and a
    setup step that installs nothing."""
    (root / ".ci").mkdir(parents=True)
    for name in (".ci/run", ".ci/machine.py", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    (root / ".ci" / "setup_env.sh").write_text("exit 0\n")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)


@pytest.mark.slow
def test_a_dying_and_a_hanging_test_end_the_ci_run_promptly_and_are_named(tmp_path):
    ci_checkout(tmp_path)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "test_dies.py").write_text(DIES)
    (tmp_path / "scratch" / "test_hangs.py").write_text(HANGS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    start = time.monotonic()
    # A session of its own: on a hang, pytest's workers are killed with it.
    run = subprocess.Popen(
        ["bash", str(tmp_path / ".ci" / "run"), "scratch/test_dies.py", "scratch/test_hangs.py"],
        env={**env, "CAFE_TF_ENVS": "tf2.16"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        output, errors = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        output, errors = run.communicate()
        pytest.fail(f".ci/run still running after 120 s:\n{output[-4000:]}\n{errors[-4000:]}")
    seconds = time.monotonic() - start
    assert run.returncode == 1, output[-4000:] + errors[-4000:]  # failed tests, no other error
    assert seconds < 90, (seconds, output[-4000:])
    # The machine line comes first.
    assert output.startswith(f"== tf2.16: TensorFlow {tf.__version__}, oneDNN "), output[:2000]
    for name in ("test_dies.py::test_aborts", "test_hangs.py::test_waits_past_its_limit"):
        assert f"crashed while running 'scratch/{name}'" in output, output[-4000:]
        assert f"FAILED scratch/{name}" in output, output[-4000:]


def test_machine_line_names_tensorflow_onednn_and_the_cpu():
    def line(**env):
        env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        run = subprocess.run(
            [sys.executable, str(ROOT / ".ci" / "machine.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout.strip()

    off = line(TF_ENABLE_ONEDNN_OPTS="0")
    assert off.startswith(f"TensorFlow {tf.__version__}, oneDNN off (TF_ENABLE_ONEDNN_OPTS=0); ")
    unset = line(TF_ENABLE_ONEDNN_OPTS=None)
    assert "(TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default);" in unset
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        first_cpu = cpuinfo.read_text().split("\n\n")[0]
        model = re.search(r"^model name\s*:\s*(.*)$", first_cpu, re.M)
        assert f"; CPU {model.group(1).strip() if model else 'unknown'}: " in off
        for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX", "amx_tile")):
            has = re.search(rf"^flags\s*:.* {flag}( |$)", first_cpu, re.M) is not None
            assert f"{name} {'yes' if has else 'no'}" in off, (name, off)
