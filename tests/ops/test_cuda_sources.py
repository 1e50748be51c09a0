"""The CUDA sources compile with the machine's nvcc, the device check builds, and the GPU
algorithm, run on the host, matches the C++ core bit for bit (custom_ops/cuda). No GPU
needed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CUDA = ROOT / "custom_ops" / "cuda"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_sources_compile_and_the_device_check_builds():
    """compile_check.sh runs `device_check.sh --dry-run` (one target, low optimisation):
    every kernel, the core and the scenarios build and link into the GPU harness."""
    harness = CUDA / "build" / "harness"
    harness.unlink(missing_ok=True)
    run = subprocess.run(
        ["bash", str(CUDA / "compile_check.sh")], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "device_check: BUILD OK" in run.stdout
    assert "compile_check: OK" in run.stdout
    assert harness.is_file() and os.access(harness, os.X_OK)


def test_gpu_algorithm_matches_core_on_the_host():
    """Every scenario, the benchmark-sized one included."""
    run = subprocess.run(
        ["bash", str(CUDA / "run_emulation_test.sh")], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAIL" not in run.stdout and "PASS" in run.stdout
    assert "PASS benchmark_shape_" in run.stdout
    assert "PASS default_layout_c16_4_3_slots_per_hot_row" in run.stdout
    assert "routing emulation: 336 of 336 scenarios match the core (PASS)" in run.stdout
    assert "occurrence emulation: 324 of 324 scenarios match the core (PASS)" in run.stdout


def test_device_check_refuses_an_unknown_mode():
    run = subprocess.run(
        ["bash", str(CUDA / "device_check.sh"), "--fast"], capture_output=True, text=True
    )
    assert run.returncode == 3 and "usage:" in run.stderr


def test_tf_gpu_kernels_compile_against_tensorflow():
    """The TF GPU kernel shell (built with CAFE_TF_CUDA=1) compiles against this TF's
    headers and the CUDA headers TF ships."""
    import tensorflow as tf

    cuda_include = Path(tf.sysconfig.get_include()) / "third_party" / "gpus" / "cuda" / "include"
    flags = [f for f in tf.sysconfig.get_compile_flags() if f != "--std=c++17"]
    shell = ROOT / "custom_ops" / "tf" / "gpu_kernels.cc"
    run = subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-fsyntax-only",
            "-Wall",
            "-DGOOGLE_CUDA=1",
            *flags,
            f"-I{cuda_include}",
            str(shell),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
