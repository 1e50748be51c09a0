"""benchmarks/core_bench.cc builds (warnings are errors) and each of its modes runs on a small
workload: `verify` checks the C++ core bit for bit against its naive restatement of the
rules; `route` and `occurrences` time the routing and backward-pass cores. No TensorFlow."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_bench(tmp_path_factory):
    binary = tmp_path_factory.mktemp("core_bench") / "core_bench"
    core = sorted(str(p) for p in (ROOT / "custom_ops" / "core").glob("*.cc"))
    build = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"]
        + [str(ROOT / "benchmarks" / "core_bench.cc"), *core, "-o", str(binary)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return binary


def _run(binary, *args):
    run = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_verify_finds_the_core_bit_identical_to_the_naive_rules(core_bench):
    out = _run(core_bench, "verify", "20")
    assert re.search(r"verify: \d+ insert/query steps and \d+ pairwise sums bit-identical", out)


def test_route_mode_times_the_deduplication_and_the_route(core_bench):
    out = _run(core_bench, "route", "64", "3")
    distinct = int(re.search(r"n=1664 \(26 features x 64\), (\d+) distinct pairs", out)[1])
    assert 26 <= distinct <= 1664
    assert re.search(r"DistinctPairs [0-9.]+ ms, Route [0-9.]+ ms", out)


def test_occurrences_mode_times_both_layouts(core_bench):
    out = _run(core_bench, "occurrences", "4096", "3")
    assert out.count("ExpandGradient (both)") == 2
    assert "shuffled" in out and "by feature" in out
