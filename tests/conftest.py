"""Shared fixtures: reference fixture location and a tiny synthesised piano set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_fixtures() -> Path:
    """The `shared/reference-fixtures` folder beside the repository (or $MUSIKA_REFERENCE_FIXTURES)."""
    path = Path(os.environ.get("MUSIKA_REFERENCE_FIXTURES", REPO.parent / "shared" / "reference-fixtures"))
    if not (path / "v44" / "io.npz").exists():
        raise FileNotFoundError(
            f"reference fixtures not found at {path}; set MUSIKA_REFERENCE_FIXTURES to the folder "
            "holding v44/ and v22/")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return reference_fixtures()


@pytest.fixture(scope="session")
def tiny_piano_root(tmp_path_factory) -> str:
    """About one minute of the synthesised MAESTRO-layout piano set (built once per session)."""
    from musika_tf.data import build_piano_dataset

    root = str(tmp_path_factory.mktemp("maestro"))
    build_piano_dataset(root, minutes=1.0, seed=3, progress=False)
    return root


def reference_tolerance(variant: str, array: str) -> float:
    """The fixture README's atol: max(10 x observed noise, 10 x float32 eps x peak|ref|)."""
    import json

    import numpy as np

    noise = json.loads((reference_fixtures() / variant / "noise.json").read_text())[array]
    eps = float(np.finfo(np.float32).eps)
    return max(10.0 * noise["max_abs"], 10.0 * eps * noise["peak"])
