"""Shared fixtures: reference fixture location and a tiny synthesised piano set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import musika_tf  # noqa: F401  (imported before TensorFlow so its TensorFlow settings apply)

REPO = Path(__file__).resolve().parents[1]


FIXTURES_ENV = "MUSIKA_REFERENCE_FIXTURES"
REQUIRE_FIXTURES_ENV = "MUSIKA_REQUIRE_FIXTURES"


def reference_fixtures() -> Path:
    """The original Musika's weights and outputs: `$MUSIKA_REFERENCE_FIXTURES`, else the
    `shared/reference-fixtures` folder beside the repository.

    A user's clone has none: the fidelity tests then skip with this reason (pytest's ``-ra`` prints
    it). With ``MUSIKA_REQUIRE_FIXTURES=1`` (set by `.ci/run`) a missing folder fails instead, so CI
    cannot pass without having run them.
    """
    path = Path(os.environ.get(FIXTURES_ENV, REPO.parent / "shared" / "reference-fixtures"))
    if not (path / "v44" / "io.npz").exists():
        message = (f"reference fixtures not found at {path}; set {FIXTURES_ENV} to the folder "
                   "holding v44/ and v22/ to run the fidelity tests against the original Musika")
        if os.environ.get(REQUIRE_FIXTURES_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_FIXTURES_ENV}=1 requires them)", pytrace=False)
        pytest.skip(message)
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
