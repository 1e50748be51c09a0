"""The version of cafe_tf, written only here: pyproject.toml reads it (setuptools'
dynamic version, parsed without importing the package) and `cafe_tf.__version__` is it."""

__version__ = "0.1.0"
