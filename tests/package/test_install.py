"""Installing cafe_tf: the supported TensorFlow range, Keras 3 in the process, sdist and wheel."""

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import tensorflow as tf
import tomllib
from packaging.requirements import Requirement

from cafe_tf import _compat

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement(name):
    (found,) = [r for r in map(Requirement, PYPROJECT["dependencies"]) if r.name == name]
    return found


def test_declared_tensorflow_range_is_the_one_checked_at_import():
    assert str(requirement("tensorflow").specifier) == str(
        Requirement(f"tensorflow{_compat.TENSORFLOW_RANGE}").specifier
    )
    assert requirement("tf-keras").specifier == requirement("tensorflow").specifier


@pytest.mark.parametrize(
    "version, supported",
    [
        pytest.param("2.15.1", False, id="2.15.1"),
        pytest.param("2.16.2", True, id="2.16.2"),
        pytest.param("2.21.0", True, id="2.21.0"),
        pytest.param("2.22.0rc0", False, id="2.22.0rc0"),
        pytest.param("2.22.0", False, id="2.22.0"),
    ],
)
def test_resolver_range_admits_exactly_the_supported_versions(version, supported):
    assert requirement("tensorflow").specifier.contains(version) is supported


def test_importing_needs_only_tensorflow_tfrs_and_numpy():
    assert {Requirement(r).name for r in PYPROJECT["dependencies"]} == {
        "tensorflow",
        "tf-keras",
        "tensorflow-recommenders",
        "numpy",
    }


@pytest.mark.parametrize(
    "tensorflow_version, tf_keras_version, message",
    [
        pytest.param(
            "2.15.1",
            "2.15.0",
            r"supports TensorFlow >=2.16,<2.22, but TensorFlow 2.15.1",
            id="tf_2.15",
        ),
        pytest.param(
            "2.22.0",
            "2.22.0",
            r"supports TensorFlow >=2.16,<2.22, but TensorFlow 2.22.0",
            id="tf_2.22",
        ),
        pytest.param(
            "2.21.0",
            "2.16.0",
            r"matching TensorFlow 2.21.0, but tf-keras 2.16.0 .*"
            r"tf-keras==2.21.\*",
            id="tf_keras_mismatch",
        ),
        pytest.param("2.16.2", None, r"but no tf-keras is installed", id="no_tf_keras"),
    ],
)
def test_unsupported_versions_are_refused(tensorflow_version, tf_keras_version, message):
    with pytest.raises(_compat.UnsupportedEnvironmentError, match=message):
        _compat.check_versions(tensorflow_version, tf_keras_version)


@pytest.mark.parametrize(
    "tensorflow_version, tf_keras_version",
    [("2.16.2", "2.16.0"), ("2.21.0", "2.21.0"), ("2.20.0rc1", "2.20.0")],
)
def test_supported_versions_pass(tensorflow_version, tf_keras_version):
    _compat.check_versions(tensorflow_version, tf_keras_version)


def run_python(code, cwd, **env):
    """Runs `code` in a fresh interpreter; TF_USE_LEGACY_KERAS unset unless given."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environ.update(TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_beside_an_unsupported_tensorflow_fails_clearly(tmp_path):
    # As after `pip install --no-deps` forced cafe_tf beside it; a failed import leaves no
    # module behind, so one interpreter tries both versions.
    run = run_python(
        """
import tensorflow as tf
for fake in ("2.15.1", "2.22.0"):
    tf.__version__ = fake
    try:
        import cafe_tf
    except ImportError as err:
        print(type(err).__name__, err)
""",
        tmp_path,
        TF_USE_LEGACY_KERAS="1",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for fake in ("2.15.1", "2.22.0"):
        assert (
            f"UnsupportedEnvironmentError cafe_tf supports TensorFlow >=2.16,<2.22, but "
            f"TensorFlow {fake} is installed"
        ) in run.stdout


def test_tf_keras_bound_to_keras3_is_a_clear_error(tmp_path):
    # First TF_USE_LEGACY_KERAS=0 binds tf.keras to Keras 3; then =1 comes too late.
    run = run_python(
        """
import os
for setting in ("0", "1"):
    os.environ["TF_USE_LEGACY_KERAS"] = setting
    try:
        import cafe_tf
    except ImportError as err:
        print(type(err).__name__, err)
""",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    errors = run.stdout.splitlines()
    assert len(errors) == 2 and all("UnsupportedEnvironmentError" in e for e in errors)
    assert "tf.keras is Keras 3 in this process (TF_USE_LEGACY_KERAS='0')" in errors[0]
    assert (
        "(TF_USE_LEGACY_KERAS='1', and tf.keras was used before cafe_tf was imported)" in errors[1]
    )


TRAIN_A_FEW_STEPS = """
from cafe_tf import experiment
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
data = SyntheticCriteo(SyntheticCriteoConfig(rows_per_day=2000, num_days=2, scale=1e-3))
result = experiment.train_and_evaluate("cafe", data, 100.0, batch_size=256, verbose=0)
assert result.hot_lookup_share > 0, "migration promoted no id"
print(f"bytes held {result.memory_bytes:,}")
"""


@pytest.mark.slow
def test_keras3_model_and_cafe_tf_in_one_process(tmp_path):
    # TF_USE_LEGACY_KERAS unset and Keras 3 in use: cafe_tf still binds tf.keras to tf_keras
    # (nothing used tf.keras yet), trains its TFRS model, and the Keras 3 model keeps working.
    run = run_python(
        """
import keras, numpy as np
k3 = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
k3.compile(optimizer="sgd", loss="mse")
k3.fit(np.ones((8, 2)), np.ones((8, 1)), verbose=0)
import cafe_tf, tensorflow as tf, tf_keras
assert tf.keras.layers.Layer is tf_keras.layers.Layer
"""
        + TRAIN_A_FEW_STEPS
        + """
print("keras", keras.__version__, k3.predict(np.ones((1, 2)), verbose=0).shape)
""",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "keras 3." in run.stdout and "(1, 1)" in run.stdout and "bytes held" in run.stdout


# Folders other tests write into while this one may run beside them (pytest -n):
# tests/ops/test_cuda_sources.py compiles the CUDA harness there.
OTHER_TESTS_OUTPUT = {os.path.join("custom_ops", "cuda", "build")}


def snapshot(root: Path) -> dict:
    """Every file of the source tree (minus environments, caches and what other tests
    write): size and mtime."""
    skip = {".git", "__pycache__", ".pytest_cache", "out"}
    files = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [
            d
            for d in subfolders
            if d not in skip
            and not d.startswith(".venv")
            and os.path.relpath(Path(folder) / d, root) not in OTHER_TESTS_OUTPUT
        ]
        for name in names:
            stat = (Path(folder) / name).stat()
            files[os.path.relpath(Path(folder) / name, root)] = (stat.st_size, stat.st_mtime_ns)
    return files


def test_snapshot_leaves_out_what_tests_running_beside_the_build_write(tmp_path):
    (tmp_path / "custom_ops" / "cuda" / "build").mkdir(parents=True)
    (tmp_path / "custom_ops" / "cuda" / "kernels.cu").write_text("source")
    (tmp_path / "custom_ops" / "cuda" / "build" / "harness").write_text("compiled")
    assert list(snapshot(tmp_path)) == [os.path.join("custom_ops", "cuda", "kernels.cu")]


def fresh_venv(tmp_path: Path) -> Path:
    """A new venv without cafe_tf or the checkout on its path, whose other packages are this
    environment's: symlinked into one folder named by a .pth file (the same TensorFlow wheel
    pip would install; saves minutes and gigabytes, and works offline)."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        if not (
            entry.name.startswith(("cafe_tf", "__editable__", "__pycache__"))
            or entry.suffix == ".pth"
        ):
            (deps / entry.name).symlink_to(entry)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    (Path(venv_site.stdout.strip()) / "cafe_tf_test_deps.pth").write_text(f"{deps}\n")
    return python


@pytest.mark.slow
@pytest.mark.timeout(1200)  # above the default: the build alone may run to its own 900 s limit
def test_build_sdist_and_wheel_then_install_into_a_fresh_venv_and_train(tmp_path):
    python = fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    before = snapshot(ROOT)
    # `python -m build` makes the sdist, then the wheel from the unpacked sdist in a temporary
    # folder: the op library is compiled there, against the fresh venv's TensorFlow.
    build = subprocess.run(
        [python, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    after = snapshot(ROOT)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"building wrote into the source tree: {changed}"

    (sdist,) = (tmp_path / "dist").glob("cafe_tf-*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("cafe_tf-*.whl")
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    assert {
        "setup.py",
        "pyproject.toml",
        "custom_ops/core/hotsketch.h",
        "custom_ops/tf/hotsketch_ops.cc",
    } <= set(names)
    assert not [n for n in names if n.endswith(".so")]
    with zipfile.ZipFile(wheel) as archive:
        libraries = [n for n in archive.namelist() if n.endswith(".so")]
        metadata = archive.read(
            next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        ).decode()
    assert libraries == [f"cafe_tf/_cafe_ops_tf{tf.__version__}.so"]
    assert "Requires-Dist: tensorflow<2.22,>=2.16" in metadata

    # --no-index: the dependencies must already be met (by this environment's packages).
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", str(wheel)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    run = subprocess.run(
        [
            python,
            "-c",
            f"""
import cafe_tf
from cafe_tf import _ops
assert cafe_tf.__file__.startswith({str(tmp_path / "venv")!r}), cafe_tf.__file__
assert _ops.ops is not None
{TRAIN_A_FEW_STEPS}""",
        ],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stdout)  # the memory report (bytes held), shown with pytest -s
    assert "bytes held" in run.stdout
