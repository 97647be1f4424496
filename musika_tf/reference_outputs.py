"""Recompute the reference fixture arrays (``shared/reference-fixtures/*/io.npz``) with our code.

`reference_outputs` takes a loaded `ReferenceCheckpoint` and the fixture inputs (``frontend_wave``
``[N, 2]``, ``dec_latent_in`` ``[T2, 2D]``, ``gen_in`` ``[fac, latlen, 2*coorddepth]``, optional
``critic_in`` ``[B, 1, latlen, 2D]``) and returns every output array under the fixture's names.

Compatibility switch ``reference_compat`` (default False everywhere except `reference_outputs`,
the fixture path): our encode/decode paths fix two reference quirks on purpose (spec section 9);
with the switch on they reproduce the reference instead:

- encode length: the reference skips signals of at most ``2*chunk_samples + 3*hop`` samples; v44
  (whole-file mode) zero-pads by ``rem = (N - 3*hop) mod chunk_samples`` samples (sic; ours pads
  to whole latents) and keeps ``floor(F / chunk_frames)`` chunks; v22 (chunked mode, crop offset 0)
  crops to ``floor((N - 3*hop) / chunk_samples) * chunk_samples + 3*hop`` samples;
- batch count: every reference batching helper runs ``((n - 2) // bs) + 1`` mini-batches, so for
  ``n = k*bs + 1`` items the last one is dropped (``n = 1``: nothing, except in the generator
  wrapper); decoding keeps only whole chunks of latents (musika_decode truncates).

Our batching itself never changes the numbers (each chunk is processed independently).
"""

from __future__ import annotations


import numpy as np

from . import audio as audio_lib
from .autoencoder import Autoencoder, latents_per_chunk, reseed_decoders, run_batched
from .autoencoder import split_stereo_latents
from .autoencoder import stereo_latents, to_chunks
from .config import Preset
from .encoding import padded_length
from .files import atomic_path
from .layers import fold, reseed_noise
from .reference import ReferenceCheckpoint, load_reference_checkpoint

__all__ = ["REFERENCE_BATCH", "reference_items", "reference_encode_wave", "encode_stages",
           "decode_stages", "generate_stages", "segment_starts", "waveform_segments",
           "reference_outputs", "write_reference_outputs", "ReferenceLimitError"]

# Mini-batch sizes of the reference's helpers: ENC/ENC2 in encoding, DEC2/DEC in decoding and
# generation (v44 decode_waveform / generate_waveform, v22 stfunc), the generator.
REFERENCE_BATCH = {"v44": {"enc": 32, "dec": 64, "gen": 64},
                   "v22": {"enc": 64, "dec": 128, "gen": 64}}
INPUTS = ("frontend_wave", "dec_latent_in", "gen_in")


class ReferenceLimitError(ValueError):
    """The reference itself produces nothing for this input (so there is nothing to reproduce)."""


def reference_items(n: int, batch_size: int, single_ok: bool = False) -> int:
    """Items the reference's batching helper processes out of ``n``: ``((n-2)//bs + 1) * bs``
    capped at ``n`` (``single_ok``: the generator wrapper's ``n = 1`` special case)."""
    if n == 1 and single_ok:
        return 1
    kept = min(n, ((n - 2) // batch_size + 1) * batch_size)
    if kept <= 0:
        raise ReferenceLimitError(f"the reference's batching processes nothing for n={n} item(s) "
                                  f"(batch count ((n-2)//{batch_size})+1 = 0)")
    return kept


def _batch(preset: Preset, stage: str) -> int:
    return REFERENCE_BATCH[preset.ae.variant][stage]


def _reference_chunks(x: np.ndarray, size: int, batch_size: int, passes: int = 1) -> np.ndarray:
    """``x[:, :n*size]``: the whole chunks of ``size`` along axis 1 that ``passes`` chained
    reference batching helpers keep (`reference_items`)."""
    n = x.shape[1] // size
    for _ in range(passes):
        n = reference_items(n, batch_size)
    return x[:, :n * size]


def reference_encode_wave(wave: np.ndarray, preset: Preset) -> np.ndarray:
    """The waveform ``[N', 2]`` the reference's encode path analyses (see the module docstring)."""
    hop, block = preset.audio.hop, preset.chunk_samples
    n = len(wave)
    if n <= 2 * block + 3 * hop:
        raise ReferenceLimitError(f"the reference's encode script skips signals of at most "
                                  f"{2 * block + 3 * hop} samples (got {n})")
    if preset.ae.variant == "v44":
        return np.pad(wave, [(0, (n - 3 * hop) % block), (0, 0)])
    return wave[:(n - 3 * hop) // block * block + 3 * hop]


def encode_stages(ae: Autoencoder, wave: np.ndarray, reference_compat: bool = False) -> dict:
    """Stereo ``[N, 2]`` -> ``enc_out`` ``[2, frames, D1]`` and ``enc2_out`` ``[T, 2D]``.

    Default: ours (zero-padded to ``ceil(N / samples_per_latent)`` latents, nothing dropped).
    ``reference_compat``: the reference's length and batch-count rules (module docstring).
    """
    preset, chunk = ae.preset, ae.preset.ae.chunk_frames
    wave = np.asarray(wave, np.float32)
    if reference_compat:
        wave = reference_encode_wave(wave, preset)
    else:
        wave = np.pad(wave, [(0, padded_length(len(wave), preset) - len(wave)), (0, 0)])
    spec = audio_lib.stereo_log_magnitude(wave, preset.audio).numpy()
    if reference_compat:  # whole chunks, as many as distribute_enc processes
        spec = _reference_chunks(spec, chunk, _batch(preset, "enc"))
    enc_out = ae.encode_level1(spec)
    if reference_compat:  # ENC2 through distribute_enc again
        enc_out = _reference_chunks(enc_out, chunk, _batch(preset, "enc"))
    return {"enc_out": enc_out, "enc2_out": stereo_latents(ae.encode_level2(enc_out))}


def _dec2_inputs(ae: Autoencoder, latents: np.ndarray, batch_size: int) -> np.ndarray:
    """The tensors DEC2 is called with, per channel, concatenated over mini-batches:
    ``[channels, 2*chunks, 1, G/2, D]`` (each mini-batch of chunks FOLD(2)-ed)."""
    chunks = to_chunks(latents, latents_per_chunk(ae.preset))  # [C*K, 1, G, D], channel-major
    chunks = chunks.reshape(len(latents), -1, *chunks.shape[1:])
    return np.stack([run_batched(lambda x: fold(x, 2), c, batch_size)[0] for c in chunks])


def _per_chunk(x: np.ndarray, chunk: int) -> np.ndarray:
    """``[C, frames, ...] -> [C, frames/chunk, chunk, ...]``; a partial last chunk (possible only
    without ``reference_compat``) keeps the frames whole: ``[C, 1, frames, ...]``."""
    size = chunk if x.shape[1] % chunk == 0 else x.shape[1]
    return x.reshape(x.shape[0], -1, size, *x.shape[2:])


def decode_stages(ae: Autoencoder, stereo: np.ndarray, reference_compat: bool = False,
                  seed: int | None = 0) -> dict:
    """Stereo latents ``[T, 2D]`` -> every decode intermediate, reference layout and names:
    ``dec2_in`` ``[2, 2n, 1, G/2, D]``, ``dec2_out`` ``[2, n, 1, chunk, D1]``, ``dec_out_mag`` /
    ``dec_out_phase`` ``[2, n, chunk, bins]``, ``dec_istft`` / ``dec_wave`` (clipped)
    ``[samples, 2]`` (n = chunks of G latents).

    ``reference_compat`` keeps only whole chunks and the reference's batch-count rule.
    ``seed`` restarts the decoders' injected noise (None: continue it).
    """
    preset, per_chunk = ae.preset, latents_per_chunk(ae.preset)
    latents = split_stereo_latents(np.asarray(stereo, np.float32))
    batch = _batch(preset, "dec") if reference_compat else ae.batch_size
    if reference_compat:  # DEC2, then DEC, each through a reference batching helper
        latents = _reference_chunks(latents, per_chunk, batch, passes=2)
    if seed is not None:
        reseed_decoders(ae.decoder2, ae.decoder, seed)
    latent1 = ae.decode_level2(latents)
    mag, phase = ae.decode_level1(latent1)
    wave = audio_lib.stereo_istft(mag, phase, preset.audio).numpy()
    chunk = preset.ae.chunk_frames
    return {"dec2_in": _dec2_inputs(ae, latents, batch),
            "dec2_out": _per_chunk(latent1, chunk)[:, :, None],
            "dec_out_mag": _per_chunk(mag, chunk), "dec_out_phase": _per_chunk(phase, chunk),
            "dec_istft": wave, "dec_wave": np.clip(wave, -1.0, 1.0)}


def generate_stages(checkpoint: ReferenceCheckpoint, coordinates: np.ndarray,
                    reference_compat: bool = False, seed: int | None = 0) -> dict:
    """Coordinates ``[fac, latlen, Cz]`` -> ``gen_out`` ``[fac, 1, latlen, 2D]`` and the whole
    stereo waveform ``gen_wave`` ``[samples, 2]`` in [-1, 1] (windows joined end to end, decoded),
    ``gen_windows`` = windows in it (``reference_compat``: the generator's batch-count rule)."""
    preset, generator = checkpoint.preset, checkpoint.generator
    coordinates = np.asarray(coordinates, np.float32)
    if coordinates.shape[1] != preset.gan.latlen:
        raise ValueError(f"gen_in windows have {coordinates.shape[1]} latents; this generator "
                         f"takes {preset.gan.latlen}")
    if seed is not None:
        reseed_noise(generator, seed + 2)
    (gen_out,) = run_batched(lambda x: generator(x, training=False), coordinates,
                             _batch(preset, "gen"))
    windows = (reference_items(len(gen_out), _batch(preset, "gen"), single_ok=True)
               if reference_compat else len(gen_out))
    stereo = gen_out[:windows, 0].reshape(-1, gen_out.shape[-1])
    wave = decode_stages(checkpoint.autoencoder, stereo, reference_compat, seed)["dec_wave"]
    return {"gen_out": gen_out, "gen_wave": wave, "gen_windows": windows}


def segment_starts(length: int, preset: Preset, windows: int) -> np.ndarray:
    """Starts (samples, int64 ``[windows + 1]``) of the 1-second slices the fixtures keep: the
    first second, one second centred on each window seam (``k * latlen * samples_per_latent``),
    the last second; clamped into the signal."""
    rate = preset.audio.sample_rate
    if length < rate:
        raise ValueError(f"generated waveform of {length} samples is shorter than one second")
    window = preset.gan.latlen * preset.samples_per_latent
    seams = [k * window - rate // 2 for k in range(1, windows)]
    return np.clip(np.array([0, *seams, length - rate], np.int64), 0, length - rate)


def waveform_segments(wave: np.ndarray, preset: Preset, windows: int) -> dict:
    """The fixtures' view of a generated waveform ``[samples, 2]``: ``gen_wave`` (whole),
    ``gen_wave_segments`` ``[K, rate, 2]`` at ``gen_wave_segment_starts`` ``[K]`` (`segment_starts`)
    and ``gen_wave_length`` (int64 scalar)."""
    rate = preset.audio.sample_rate
    starts = segment_starts(len(wave), preset, windows)
    return {"gen_wave": wave, "gen_wave_segments": np.stack([wave[s:s + rate] for s in starts]),
            "gen_wave_segment_starts": starts, "gen_wave_length": np.int64(len(wave))}


def reference_outputs(checkpoint: ReferenceCheckpoint, inputs: dict, reference_compat: bool = True,
                      seed: int | None = 0) -> dict:
    """Every fixture output array from the fixture inputs (module docstring), plus the whole
    generated waveform ``gen_wave``. ``critic_out`` (first critic output ``[B, 1]``) only when
    ``critic_in`` is given and the checkpoint has a critic."""
    missing = [name for name in INPUTS if name not in inputs]
    if missing:
        raise KeyError(f"input array(s) missing: {', '.join(missing)} (need {', '.join(INPUTS)})")
    ae, cfg = checkpoint.autoencoder, checkpoint.preset.audio
    out = {"frontend_spec": audio_lib.stereo_log_magnitude(inputs["frontend_wave"], cfg).numpy()}
    out.update(encode_stages(ae, inputs["frontend_wave"], reference_compat))
    out.update(decode_stages(ae, inputs["dec_latent_in"], reference_compat, seed))
    gen = generate_stages(checkpoint, inputs["gen_in"], reference_compat, seed)
    out["gen_out"] = gen["gen_out"]
    out.update(waveform_segments(gen["gen_wave"], checkpoint.preset, gen["gen_windows"]))
    if "critic_in" in inputs and checkpoint.critic is not None:
        logits = checkpoint.critic(np.asarray(inputs["critic_in"], np.float32), training=False)
        out["critic_out"] = np.asarray(logits[0] if isinstance(logits, (list, tuple)) else logits)
    return out


def write_reference_outputs(folder: str, io_path: str, out_path: str, preset_name: str = "musika44",
                            ae_folder: str | None = None, reference_compat: bool = True) -> dict:
    """Load the reference checkpoint in ``folder``, compute `reference_outputs` for the inputs in
    ``io_path`` (.npz) and write them to ``out_path`` (.npz, atomically); returns the arrays."""
    checkpoint = load_reference_checkpoint(folder, preset_name, ae_folder)
    with np.load(io_path) as io:
        inputs = {name: io[name] for name in (*INPUTS, "critic_in") if name in io.files}
    arrays = reference_outputs(checkpoint, inputs, reference_compat)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return arrays
