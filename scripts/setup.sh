#!/usr/bin/env bash
# One-step installation of everything musika-tf needs; safe to run again (does only what is missing).
#   1. Debian packages via apt-get, when missing and root: fluidsynth + a General-MIDI sound font
#      (the embedded piano set), ffmpeg (the app's streaming audio output), chromium (the app's
#      browser tests, driven by Playwright with this system browser: no browser is downloaded);
#   2. a virtual environment in .venv with the pinned Python stack (requirements.txt, the test tools
#      of requirements-test.txt, and the
#      weight-carrying packages of requirements-nodeps.txt without their dependencies);
#   3. madmom 0.16.1, patched for Python 3.11 / numpy 1.26 and built from its PyPI sdist.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
DEB_PACKAGES=(fluidsynth timgm6mb-soundfont ffmpeg chromium)

have_soundfont() {
  local f
  for f in /usr/share/sounds/sf2/*.sf2 /usr/share/soundfonts/*.sf2; do
    [ -e "$f" ] && return 0
  done
  return 1
}

install_debian_packages() {
  if command -v fluidsynth >/dev/null 2>&1 && have_soundfont && command -v ffmpeg >/dev/null 2>&1 \
      && command -v chromium >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${DEB_PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${DEB_PACKAGES[@]}" >/dev/null
  else
    echo "setup: missing system packages; run as root: apt-get install ${DEB_PACKAGES[*]}" >&2
    echo "setup: (without them the embedded piano set cannot be rendered, the app cannot stream" >&2
    echo "setup: and its browser tests fail)" >&2
  fi
}

install_python_packages() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha256"
  local want
  want=$(cat requirements.txt requirements-nodeps.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python packages from requirements.txt"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -r requirements.txt -r requirements-test.txt
    "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
    echo "$want" > "$stamp"
  fi
}

install_debian_packages
install_python_packages
"$VENV/bin/python" scripts/install_madmom.py
echo "setup: done"
