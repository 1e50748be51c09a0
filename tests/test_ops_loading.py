"""The op library loader says clearly what is wrong and how to rebuild."""
import json
import shutil

import pytest

from cafe_tf import _ops


def test_missing_library(tmp_path, monkeypatch):
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(_ops.OpLibraryError, match="missing.*Rebuild"):
        _ops._load()


def test_library_built_for_another_tensorflow(tmp_path, monkeypatch):
    library = sorted(_ops._HERE.glob("_cafe_ops*.so"))[0]
    shutil.copy(library, tmp_path / library.name)
    (tmp_path / "_build_info.json").write_text(json.dumps({"tensorflow_version": "2.15.0"}))
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(_ops.OpLibraryError, match="built for TensorFlow 2.15.0.*Rebuild"):
        _ops._load()


def test_library_without_build_record(tmp_path, monkeypatch):
    library = sorted(_ops._HERE.glob("_cafe_ops*.so"))[0]
    shutil.copy(library, tmp_path / library.name)
    monkeypatch.setattr(_ops, "_HERE", tmp_path)
    with pytest.raises(_ops.OpLibraryError, match="no build record"):
        _ops._load()


def test_installed_library_loads():
    assert _ops.ops is not None and _ops.load_error is None
    assert hasattr(_ops.ops, "cafe_sketch_insert")
