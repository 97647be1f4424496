"""musika-tf: fast infinite waveform music generation (Musika, Pasini & Schlueter 2022) in TF/Keras 3."""

import os

# TensorFlow's C++ INFO lines (CPU instruction sets, oneDNN notices) are noise for our users;
# warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL yourself to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
