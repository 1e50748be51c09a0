"""Builds the HotSketch custom op library against the installed TensorFlow.

The C++ core (custom_ops/core) and its TF shell (custom_ops/tf) are compiled
with g++ and TensorFlow's own flags into cafe_tf/_cafe_ops*.so. The TF version
the library was built for is written next to it (_build_info.json), so a
mismatch at import time is reported instead of failing with an undefined
symbol. `python setup.py build_ext --inplace` rebuilds it in place.
With CAFE_TF_CUDA=1 the library also gets the CUDA kernels
(custom_ops/cuda/build_gpu_ops.sh; needs nvcc, see README "GPU").
"""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class BuildCafeOps(build_ext):
    """Compiles the op library with g++ instead of as a Python extension."""

    def build_extension(self, ext):
        import tensorflow as tf  # the build needs the TF it will run with

        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.environ.get("CAFE_TF_CUDA") == "1":
            subprocess.run(["bash", str(ROOT / "custom_ops" / "cuda" / "build_gpu_ops.sh"),
                            str(target)], check=True, env={**os.environ, "PYTHON": sys.executable})
        else:
            self._build_cpu(ext, target, tf)
        info = json.dumps({"tensorflow_version": tf.__version__, "library": target.name,
                           "cuda": os.environ.get("CAFE_TF_CUDA") == "1"})
        # Next to the built library and in the source tree (editable installs
        # copy only the library itself).
        for folder in {target.parent, ROOT / "cafe_tf"}:
            (folder / "_build_info.json").write_text(info + "\n")

    @staticmethod
    def _build_cpu(ext, target, tf):
        sources = [str(ROOT / s) for s in ext.sources]
        compile_flags = [f for f in tf.sysconfig.get_compile_flags() if f != "--std=c++17"]
        cmd = ["g++", "-std=c++17", "-shared", "-fPIC", "-O3", *sources, "-o", str(target),
               *compile_flags, *tf.sysconfig.get_link_flags()]
        print(" ".join(shlex.quote(c) for c in cmd), flush=True)
        subprocess.run(cmd, check=True)


SOURCES = sorted(str(p.relative_to(ROOT)) for d in ("core", "tf")
                 for p in (ROOT / "custom_ops" / d).glob("*.cc"))

setup(ext_modules=[Extension("cafe_tf._cafe_ops", sources=SOURCES)],
      cmdclass={"build_ext": BuildCafeOps})
