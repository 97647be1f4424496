"""The benchmarks measure what users run: TensorFlow with the kernels `musika_tf` turns on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMPORTS_TENSORFLOW = ["bench_generation", "bench_training", "bench_autoencoder", "bench_precision"]


@pytest.mark.parametrize("name", IMPORTS_TENSORFLOW)
def test_a_benchmark_imports_musika_tf_before_tensorflow(name):
    """TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import; imported before `musika_tf` it runs
    its own default (oneDNN off on AVX2-only CPUs, 2-5x slower decoders) and the numbers are not
    the product's. `musika_tf` sets the variable only when TensorFlow is not yet imported."""
    code = ("import importlib.util, os, sys; "
            f"spec = importlib.util.spec_from_file_location('bench', {str(REPO / 'benchmarks' / (name + '.py'))!r}); "
            "module = importlib.util.module_from_spec(spec); "
            f"sys.path.insert(0, {str(REPO / 'benchmarks')!r}); "
            "spec.loader.exec_module(module); "
            "assert 'tensorflow' in sys.modules; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"
