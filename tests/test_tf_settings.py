"""TensorFlow settings the library makes when it is imported (oneDNN kernels on CPUs where
TensorFlow would leave them off)."""

import os
import subprocess
import sys

import pytest

PROBE = ("import os, sys\n"
         "{first}\n"
         "from tensorflow.python.util import _pywrap_util_port as port\n"
         "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled())\n")


def probe(first: str, **env) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=environ,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("first", ["import musika_tf; import tensorflow",
                                   "import musika_tf.inference"])
def test_import_turns_onednn_on(first):
    assert probe(first) == ["1", "True"]


def test_user_choice_is_kept():
    assert probe("import musika_tf; import tensorflow", TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]


def test_tensorflow_imported_first_is_left_alone():
    """Set after TensorFlow's import the variable would not switch the kernels, only TensorFlow's
    idea of them, so the library leaves it unset."""
    assert probe("import tensorflow; import musika_tf")[0] == "None"
