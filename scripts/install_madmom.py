"""Install madmom 0.16.1 into the current interpreter, patched for Python 3.11 and numpy >= 1.24.

PyPI only has madmom 0.16.1 as a 2018 source distribution that no longer builds or imports as
published: it imports `MutableSequence` from `collections` and uses the removed numpy aliases
`np.float`, `np.int`, `np.bool` and `np.complex` in .py and .pyx (Cython) files. This script
downloads the sdist from PyPI, rewrites those names (word-bounded, so `np.float32` is untouched),
and builds it without build isolation against the numpy already installed. Idempotent: it does
nothing when a working madmom is importable.

Usage: python scripts/install_madmom.py [--build-dir build/madmom]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tarfile

VERSION = "0.16.1"
BUILD_REQUIREMENTS = ["numpy==1.26.4", "cython<3.1", "scipy", "wheel", "setuptools<81"]
ALIAS_RE = re.compile(r"\bnp\.(float|int|bool|complex)\b(?![\w.])")
COLLECTIONS_RE = re.compile(r"from collections import (MutableSequence)")


def madmom_works() -> bool:
    code = "import madmom, madmom.features.onsets, madmom.features.tempo; print(madmom.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == VERSION


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def patch_source(root: str) -> int:
    """Rewrite numpy aliases and the collections import; return the number of replacements."""
    total = 0
    for path in glob.glob(os.path.join(root, "**", "*.py"), recursive=True) + glob.glob(
        os.path.join(root, "**", "*.pyx"), recursive=True
    ):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new, n_alias = ALIAS_RE.subn(r"\1", text)
        new, n_coll = COLLECTIONS_RE.subn(r"from collections.abc import \1", new)
        if n_alias or n_coll:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(new)
            total += n_alias + n_coll
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=os.path.join("build", "madmom"),
                        help="where the sdist is downloaded and unpacked (default build/madmom)")
    args = parser.parse_args()
    if madmom_works():
        print(f"madmom {VERSION} already installed")
        return 0
    os.makedirs(args.build_dir, exist_ok=True)
    pip("install", "-q", *BUILD_REQUIREMENTS)
    sdist = os.path.join(args.build_dir, f"madmom-{VERSION}.tar.gz")
    if not os.path.exists(sdist):
        # --no-build-isolation: reading the sdist's metadata runs its setup.py, which imports
        # Cython and numpy (installed above) and declares no build requirements of its own.
        pip("download", "-q", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
            f"madmom=={VERSION}", "-d", args.build_dir)
    source = os.path.join(args.build_dir, f"madmom-{VERSION}")
    if os.path.isdir(source):
        import shutil

        shutil.rmtree(source)
    with tarfile.open(sdist) as tar:
        tar.extractall(args.build_dir, filter="data")
    count = patch_source(source)
    print(f"patched madmom {VERSION}: {count} replacements")
    pip("install", "-q", "--no-build-isolation", "--no-deps", source)
    if not madmom_works():
        print("madmom installed but does not import; see the messages above", file=sys.stderr)
        return 1
    print(f"madmom {VERSION} installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
