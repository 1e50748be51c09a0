"""Builds the HotSketch custom op library against the installed TensorFlow.

The C++ core (custom_ops/core) and its TF shell (custom_ops/tf) are compiled
with g++ and TensorFlow's own flags into cafe_tf/_cafe_ops_tf<version>.so,
named after the TensorFlow it was built for: a library only loads in that
TensorFlow, environments with different TensorFlows can share one checkout
(editable installs), and cafe_tf/_ops.py reports a mismatch by name.

The build needs the TensorFlow it will run with, so install TensorFlow first and
build without isolation (an isolated build cannot see it):
    pip install --no-build-isolation -e .        # a checkout, in place
    pip install --no-build-isolation cafe_tf-*.tar.gz
    python -m build --no-isolation               # sdist + wheel (in dist/)
Building a wheel or an sdist writes nothing into the source tree: setuptools'
scratch folder is a temporary one. With CAFE_TF_CUDA=1 the library also gets the
CUDA kernels (custom_ops/cuda/build_gpu_ops.sh; needs nvcc, see
custom_ops/cuda/README.md).
"""

import atexit
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
OP_LIBRARY = "cafe_tf._cafe_ops"
# cafe_tf/_ops.py looks for this name; tests/ops/test_ops_loading.py checks the two agree.
LIBRARY_NAME = "_cafe_ops_tf{version}.so"


def _installed_tensorflow():
    """The importable TensorFlow module, or None."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


class BuildCafeOps(build_ext):
    """Compiles the op library with g++ instead of as a Python extension."""

    def get_ext_filename(self, fullname):
        filename = super().get_ext_filename(fullname)
        # distutils passes the full dotted name or only its last part, depending on the caller.
        is_op_library = fullname.rpartition(".")[2] == OP_LIBRARY.rpartition(".")[2]
        tf = _installed_tensorflow() if is_op_library else None
        if tf is None:  # not the op library, or no build will happen (sdist: sources only)
            return filename
        return str(Path(filename).with_name(LIBRARY_NAME.format(version=tf.__version__)))

    def build_extension(self, ext):
        tf = _installed_tensorflow()
        if tf is None:
            raise RuntimeError(
                "cafe_tf compiles its op library against the TensorFlow it will run with, and "
                "this build cannot import TensorFlow. Install a supported TensorFlow and its "
                "tf-keras first (docs/install.md), then build without isolation: `pip install "
                "--no-build-isolation cafe_tf` (or `python -m build --no-isolation`)."
            )
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.environ.get("CAFE_TF_CUDA") == "1":
            subprocess.run(
                ["bash", str(ROOT / "custom_ops" / "cuda" / "build_gpu_ops.sh"), str(target)],
                check=True,
                env={**os.environ, "PYTHON": sys.executable},
            )
        else:
            self._build_cpu(ext, target, tf)

    @staticmethod
    def _build_cpu(ext, target, tf):
        sources = [str(ROOT / s) for s in ext.sources]
        compile_flags = [f for f in tf.sysconfig.get_compile_flags() if f != "--std=c++17"]
        cmd = [
            "g++",
            "-std=c++17",
            "-shared",
            "-fPIC",
            "-O3",
            *sources,
            "-o",
            str(target),
            *compile_flags,
            *tf.sysconfig.get_link_flags(),
        ]
        print(" ".join(shlex.quote(c) for c in cmd), flush=True)
        subprocess.run(cmd, check=True)


def _scratch_folder():
    """A temporary build folder, so no stale build/ output (say, a library built for
    another TensorFlow) lands in a wheel and nothing is written into the tree."""
    folder = tempfile.mkdtemp(prefix="cafe_tf_build_")
    atexit.register(shutil.rmtree, folder, True)
    return folder


# The CPU library: the core and the TF shell, less the TF GPU kernels (custom_ops/tf/gpu_kernels.cc,
# built with the CUDA kernels by custom_ops/cuda/build_gpu_ops.sh).
SOURCES = sorted(
    str(p.relative_to(ROOT))
    for d in ("core", "tf")
    for p in (ROOT / "custom_ops" / d).glob("*.cc")
    if p.name != "gpu_kernels.cc"
)

setup(
    ext_modules=[Extension(OP_LIBRARY, sources=SOURCES)],
    cmdclass={"build_ext": BuildCafeOps},
    options={
        "build": {"build_base": _scratch_folder()},
        "egg_info": {"egg_base": _scratch_folder()},
    },
)
