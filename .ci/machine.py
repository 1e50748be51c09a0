"""One line for .ci/run's log: this environment's TensorFlow, its oneDNN setting, and the CPU
with its AVX2 / AVX-512 / AMX support. TensorFlow's oneDNN kernels differ by CPU (a zero-width
matmul aborts on some x86 CPUs and not on others), so a failure seen on one machine only is
traced from this line."""

import importlib.metadata
import os


def cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(
                line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line
            )
    except OSError:
        return "CPU unknown (no /proc/cpuinfo)"
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())

    def has(flag):
        return "yes" if flag in flags else "no"

    return (
        f"CPU {fields.get('model name', 'unknown')}: AVX2 {has('avx2')}, "
        f"AVX-512 {has('avx512f')}, AMX {has('amx_tile')}"
    )


def onednn() -> str:
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    setting = (
        "TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default"
        if setting is None
        else f"TF_ENABLE_ONEDNN_OPTS={setting}"
    )
    try:
        # A private module, but the one TensorFlow's own tests ask (it imports TensorFlow).
        from tensorflow.python.util import _pywrap_util_port

        state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):
        state = "unknown"
    return f"oneDNN {state} ({setting})"


if __name__ == "__main__":
    print(f"TensorFlow {importlib.metadata.version('tensorflow')}, {onednn()}; {cpu()}")
