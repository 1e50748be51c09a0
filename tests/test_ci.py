""".ci/run: a test that dies or hangs ends the run promptly, named; the machine line it prints."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def ci_pytest_options():
    """The options .ci/run gives pytest (its PYTEST_OPTIONS array)."""
    (line,) = re.findall(r"^PYTEST_OPTIONS=\((.*)\)$", (ROOT / ".ci" / "run").read_text(), re.M)
    return shlex.split(line)


@pytest.mark.slow
def test_a_dying_and_a_hanging_test_end_the_run_promptly_and_are_named(tmp_path):
    (tmp_path / "test_dies.py").write_text(DIES)
    (tmp_path / "test_hangs.py").write_text(HANGS)
    # As .ci/run runs pytest, with the project's pytest settings (-c), on the scratch files.
    command = [sys.executable, "-m", "pytest", *ci_pytest_options(), "-p", "no:cacheprovider",
               "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
               "test_dies.py", "test_hangs.py"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    start = time.monotonic()
    # A session of its own: on a hang, its workers are killed with it.
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = run.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        output, _ = run.communicate()
        pytest.fail(f"pytest as CI runs it still running after 90 s:\n{output[-4000:]}")
    seconds = time.monotonic() - start
    assert run.returncode == 1, output[-4000:]  # tests failed (not an internal error)
    assert seconds < 60, (seconds, output[-4000:])
    for name in ("test_dies.py::test_aborts", "test_hangs.py::test_waits_past_its_limit"):
        assert f"crashed while running '{name}'" in output, output[-4000:]
        assert f"FAILED {name}" in output, output[-4000:]


def test_machine_line_names_tensorflow_onednn_and_the_cpu():
    def line(**env):
        run = subprocess.run([sys.executable, str(ROOT / ".ci" / "machine.py")],
                             env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout.strip()

    import tensorflow as tf

    off = line(TF_ENABLE_ONEDNN_OPTS="0")
    assert off.startswith(f"TensorFlow {tf.__version__}, oneDNN off (TF_ENABLE_ONEDNN_OPTS=0); CPU ")
    assert "(TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default)" in line(TF_ENABLE_ONEDNN_OPTS=None)
    if os.path.exists("/proc/cpuinfo"):
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
        flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
        flags = set(flags.group(1).split()) if flags else set()
        expected = (f"CPU {model.group(1).strip() if model else 'unknown'}: "
                    f"AVX2 {'yes' if 'avx2' in flags else 'no'}, "
                    f"AVX-512 {'yes' if 'avx512f' in flags else 'no'}, "
                    f"AMX {'yes' if 'amx_tile' in flags else 'no'}")
        assert off.endswith(expected), (off, expected)
