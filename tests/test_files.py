"""Folder replacement that a crash cannot leave half done (exports, latent stores)."""

from __future__ import annotations

import os

import pytest

from musika_tf import files


def _folder(path, text):
    os.makedirs(path)
    (path / "model.txt").write_text(text)


def test_replace_folder_swaps_complete_folders(tmp_path):
    dst, new = tmp_path / "model", tmp_path / "model.partial"
    _folder(dst, "old")
    _folder(new, "new")
    files.replace_folder(str(new), str(dst))
    assert (dst / "model.txt").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_crash_between_the_renames_leaves_the_old_folder_loadable(tmp_path, monkeypatch):
    dst, new = tmp_path / "model", tmp_path / "model.partial"
    _folder(dst, "old")
    _folder(new, "new")
    real_replace = os.replace
    calls = []

    def crash_on_second(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        files.replace_folder(str(new), str(dst))
    monkeypatch.setattr(os, "replace", real_replace)
    assert not dst.exists()  # the moment of the crash: only the old folder, set aside
    files.recover_folder(str(dst))
    assert (dst / "model.txt").read_text() == "old"


def test_export_check_recovers_an_interrupted_replacement(tmp_path):
    from musika_tf.export import check_folder

    dst = tmp_path / "model"
    _folder(tmp_path / ("model" + files.PREVIOUS_SUFFIX), "old")
    with pytest.raises(FileNotFoundError, match="not an exported"):
        check_folder(str(dst))  # recovered first, then judged on its contents
    assert (dst / "model.txt").read_text() == "old"
