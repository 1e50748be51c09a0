"""The C++ core's rules (custom_ops/tests/hotsketch_rules_test.cc), compiled with g++ and run.
No TensorFlow needed."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_rules(tmp_path):
    binary = tmp_path / "hotsketch_rules_test"
    core = sorted(str(p) for p in (ROOT / "custom_ops" / "core").glob("*.cc"))
    build = subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            str(ROOT / "custom_ops" / "tests" / "hotsketch_rules_test.cc"),
            *core,
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS" in run.stdout and " 0 failed" in run.stdout
