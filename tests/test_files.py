"""Atomic writes: the target appears only when complete; a failed write leaves nothing behind."""

import os

import pytest

from musika_tf.files import atomic_path


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.wav"
    with atomic_path(str(target)) as tmp:
        assert tmp.endswith(".partial.wav") and not target.exists()
        open(tmp, "w").write("ok")
    assert target.read_text() == "ok"
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "ok" and not os.path.exists(tmp)
