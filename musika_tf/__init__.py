"""musika-tf: fast infinite waveform music generation (Musika, Pasini & Schlueter 2022) in TF/Keras 3."""

import os
import sys

# TensorFlow's C++ INFO lines (CPU instruction sets, oneDNN notices) are noise for our users;
# warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL yourself to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# oneDNN kernels. TensorFlow turns them on by itself only on CPUs with AVX512-VNNI, AVX512-BF16 or
# AMX; elsewhere (AVX2-only CPUs such as many desktop and cloud AMD/Intel parts) its fallback kernels
# run the decoders' transposed convolutions several times slower (docs/PERFORMANCE.md, "Against the
# original"). This takes effect when musika_tf is imported before TensorFlow, as every entry point
# does (TensorFlow reads the variable when it is imported: set later it would only confuse it); set
# TF_ENABLE_ONEDNN_OPTS=0 yourself to keep TensorFlow's choice.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
