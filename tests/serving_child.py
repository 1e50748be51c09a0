"""Serves a SavedModel in a fresh interpreter that cannot import cafe_tf (tests/tools/test_serving.py,
tests/keras3/test_keras3_serving.py): the repository is not on sys.path and a meta-path hook
refuses the import (an editable install would otherwise find it). Without cafe_tf no cafe_tf
op is registered, so loading a graph that holds one fails.

    python -I serving_child.py REPOSITORY EXPORT_DIR INPUTS.npz OUT.npz

INPUTS.npz holds the serving signature's flat inputs (`cafe_tf.serving.signature_inputs`;
ragged features as `f_values` and `f_row_lengths`). OUT.npz gets the `predictions` of the
signature and of the `serve` function; stdout's last line is JSON: the cafe_tf modules
imported (none) and the signature's input names. The tests call `serve_in_child`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def serve_in_child(export_dir, inputs, expected, workdir):
    """Serves `inputs` (flat, {name: array}) with the SavedModel in `export_dir` in a child
    process without cafe_tf, checks that the signature and `serve` both give `expected`, and
    returns the signature's input names."""
    import numpy as np

    workdir = Path(workdir)
    np.savez(workdir / "inputs.npz", **inputs)
    run = subprocess.run(
        [
            sys.executable,
            "-I",
            __file__,
            str(REPOSITORY),
            str(export_dir),
            str(workdir / "inputs.npz"),
            str(workdir / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["cafe_modules"] == [], report
    served = np.load(workdir / "out.npz")
    np.testing.assert_allclose(served["signature"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(served["serve"], expected, rtol=1e-6, atol=1e-6)
    return report["signature_inputs"]


class _RefuseCafe:
    def find_spec(self, name, path=None, target=None):
        if name == "cafe_tf" or name.startswith("cafe_tf."):
            raise ImportError("cafe_tf must not be imported by the serving process")
        return None


def main(repository, export_dir, inputs_path, out_path):
    repository = os.path.abspath(repository)
    sys.meta_path.insert(0, _RefuseCafe())
    sys.path[:] = [
        p
        for p in sys.path
        if p
        and (
            os.path.abspath(p).startswith(sys.prefix)
            or not os.path.abspath(p).startswith(repository)
        )
    ]
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    inputs = dict(np.load(inputs_path))
    signature = loaded.signatures["serving_default"]
    flat = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    features = {}
    for key, value in inputs.items():
        if key.endswith("_values"):
            name = key[: -len("_values")]
            features[name] = tf.RaggedTensor.from_row_lengths(value, inputs[f"{name}_row_lengths"])
        elif not key.endswith("_row_lengths"):
            features[key] = tf.constant(value)
    python = loaded.serve(features)
    np.savez(out_path, signature=flat["predictions"].numpy(), serve=python["predictions"].numpy())
    print(
        json.dumps(
            {
                "cafe_modules": sorted(m for m in sys.modules if m.startswith("cafe_tf")),
                "signature_inputs": sorted(signature.structured_input_signature[1]),
            }
        )
    )


if __name__ == "__main__":  # pytest's doctest collection imports this file too
    main(*sys.argv[1:5])
