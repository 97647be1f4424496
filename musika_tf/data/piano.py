"""Embedded piano set in the MAESTRO v3 layout, synthesised from the music21 corpus.

Scores (Bach chorales, interleaved with other keyboard-friendly works) are "performed" with
seeded humanisation (tempo, rubato, onset jitter, velocities), written as single-track piano
MIDI (program 0) with music21, rendered to stereo audio by the FluidSynth command line with a
General-MIDI sound font, widened slightly and peak-normalised to -1 dBFS. Deterministic for a
given seed, corpus version and sound font. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ..files import atomic_path
from . import common

CSV_NAME = "maestro-v3.0.0.csv"
COLUMNS = ["canonical_composer", "canonical_title", "split", "year", "midi_filename",
           "audio_filename", "duration"]
FILE_COLUMNS = ("midi_filename", "audio_filename")
DEFAULT_MINUTES = 20.0
FORMAT_VERSION = 1  # bump when the rendering changes, so old builds are rebuilt

SOUNDFONT_ENV = "MUSIKA_SOUNDFONT"
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts")
PREFERRED_SOUNDFONTS = ("TimGM6mb.sf2", "default-GM.sf2", "FluidR3_GM.sf2")
SOUNDFONT_PACKAGE = "timgm6mb-soundfont"
FLUIDSYNTH_GAIN = 0.6  # float output, so no clipping inside FluidSynth
MAESTRO_YEARS = (2004, 2006, 2008, 2009, 2011, 2013, 2014, 2015, 2017, 2018)
CHORALES_PER_OTHER_WORK = 4  # interleaving of the two pools
MAX_FAILURES_IN_A_ROW = 5  # then the tools, not the pieces, are broken
TIME_GRID = 1.0 / 1024.0  # s; MIDI written at 60 qpm, so 1 quarter = 1 s
PIANO_RANGE = (21, 108)  # MIDI pitches A0..C8
CHORALE_QPM = (66.0, 88.0)  # quarter notes per minute, drawn per chorale
BACH = "Johann Sebastian Bach"

# (corpus name, composer, title, quarter notes per minute or None to follow the score's marks)
OTHER_WORKS = (
    ("bach/bwv846", BACH, "Prelude in C Major, BWV 846", None),
    ("mozart/k545/movement1_exposition", "Wolfgang Amadeus Mozart",
     "Piano Sonata in C Major, K. 545, I. Allegro (exposition)", None),
    ("joplin/maple_leaf_rag", "Scott Joplin", "Maple Leaf Rag", None),
    ("chopin/mazurka06-2.krn", "Frédéric Chopin", "Mazurka in C-sharp Minor, Op. 6, No. 2", 144.0),
    ("schumann_clara/polonaise_op1n1", "Clara Schumann", "Polonaise, Op. 1, No. 1", None),
    ("schumann_clara/polonaise_op1n2", "Clara Schumann", "Polonaise, Op. 1, No. 2", None),
    ("schumann_clara/polonaise_op1n3", "Clara Schumann", "Polonaise, Op. 1, No. 3", None),
    ("schumann_clara/polonaise_op1n4", "Clara Schumann", "Polonaise, Op. 1, No. 4", None),
    ("cpebach/h186", "Carl Philipp Emanuel Bach", "Sonata in A Major, H. 186, II. Poco adagio", 60.0),
    ("schumann_robert/dichterliebe_no2", "Robert Schumann", "Dichterliebe, Op. 48, No. 2", 72.0),
    ("schubert/Lindenbaum", "Franz Schubert", "Der Lindenbaum, D. 911, No. 5", 90.0),
    ("beach/prayer_of_a_tired_child", "Amy Beach", "Prayer of a Tired Child", 66.0),
    ("mozart/k80/movement2", "Wolfgang Amadeus Mozart", "Quartet in G Major, K. 80, II (piano)", 120.0),
    ("mozart/k155/movement1", "Wolfgang Amadeus Mozart", "Quartet in D Major, K. 155, I (piano)", 120.0),
    ("mozart/k156/movement1", "Wolfgang Amadeus Mozart", "Quartet in G Major, K. 156, I (piano)", None),
    ("haydn/opus1no1/movement1", "Joseph Haydn", "Quartet in B-flat Major, Op. 1, No. 1, I (piano)",
     132.0),
)
_CHORALE_FILE = re.compile(r"^bwv[\d.]+(-[a-z])?\.mxl$")  # leaves out -sc (scored) variants


class RenderError(RuntimeError):
    """A piece could not be turned into audio (no notes, FluidSynth failure)."""


@dataclass(frozen=True)
class Piece:
    """One score of the corpus with its catalogue data."""

    name: str  # music21 corpus name
    composer: str
    title: str
    qpm: float | None  # None: follow the score's metronome marks
    chorale: bool = False


# ---------------------------------------------------------------------------------------------
# Tools: FluidSynth and the sound font


def find_fluidsynth() -> str:
    """Path of the `fluidsynth` program (raises naming the Debian package if missing)."""
    path = shutil.which("fluidsynth")
    if path is None:
        raise FileNotFoundError("fluidsynth not found on PATH: install the Debian package "
                                f"`fluidsynth` (apt-get install fluidsynth {SOUNDFONT_PACKAGE})")
    return path


def find_soundfont() -> str:
    """The General-MIDI sound font: $MUSIKA_SOUNDFONT, else the first found in the Debian folders."""
    chosen = os.environ.get(SOUNDFONT_ENV)
    if chosen:
        if not os.path.isfile(chosen):
            raise FileNotFoundError(f"${SOUNDFONT_ENV}={chosen}: no such sound font file")
        return chosen
    for folder in SOUNDFONT_DIRS:
        found = [os.path.join(folder, n) for n in PREFERRED_SOUNDFONTS]
        if os.path.isdir(folder):
            found += sorted(os.path.join(folder, n) for n in os.listdir(folder)
                            if n.lower().endswith((".sf2", ".sf3")))
        for path in found:
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"no sound font found in {' or '.join(SOUNDFONT_DIRS)}: install the Debian package "
        f"`{SOUNDFONT_PACKAGE}` or set ${SOUNDFONT_ENV} to a .sf2 file")


# ---------------------------------------------------------------------------------------------
# Corpus selection


def catalogue() -> tuple[list[Piece], list[Piece]]:
    """(Bach chorales, other works) available in the installed music21 corpus, sorted."""
    from music21 import corpus

    chorales = sorted({os.path.basename(p) for p in map(str, corpus.getComposer("bach"))
                       if _CHORALE_FILE.match(os.path.basename(p))} - {"bwv846.mxl"})
    return ([Piece("bach/" + n, BACH, f"Chorale BWV {n[3:-4]}", None, chorale=True) for n in chorales],
            [Piece(*work) for work in OTHER_WORKS])


def piece_order(seed: int) -> list[Piece]:
    """Seeded order of all pieces: shuffled chorales with a shuffled other work every few."""
    chorales, others = catalogue()
    rng = common.item_rng(seed, "piano-order", 0)
    chorales = [chorales[i] for i in rng.permutation(len(chorales))]
    others = [others[i] for i in rng.permutation(len(others))]
    order = []
    for i, chorale in enumerate(chorales):
        order.append(chorale)
        if i % CHORALES_PER_OTHER_WORK == CHORALES_PER_OTHER_WORK - 1 and others:
            order.append(others.pop(0))
    return order + others


# ---------------------------------------------------------------------------------------------
# Score -> humanised performance


def score_notes(score) -> dict[str, np.ndarray]:
    """Sounding notes of all parts (ties merged, chords split): part, start/end (quarters), pitch."""
    from music21 import chord, harmony, note

    rows = []
    for index, part in enumerate(score.stripTies().parts):
        for element in part.flatten().notes:
            length = float(element.quarterLength)
            if isinstance(element, harmony.Harmony) or length <= 0:
                continue
            if isinstance(element, note.Note):
                pitches = [element.pitch.midi]
            elif isinstance(element, chord.Chord):
                pitches = [p.midi for p in element.pitches]
            else:  # unpitched percussion and the like
                continue
            start = float(element.offset)
            rows += [(index, start, start + length, pitch) for pitch in pitches]
    if not rows:
        raise RenderError("the score has no pitched notes")
    part, start, end, pitch = (np.array(c) for c in zip(*rows))
    return {"part": part.astype(int), "start": start, "end": end, "pitch": _in_range(pitch)}


def _in_range(pitch: np.ndarray) -> np.ndarray:
    """MIDI pitches moved by octaves into the piano's range."""
    low, high = PIANO_RANGE
    pitch = pitch.astype(int)
    pitch = np.where(pitch < low, pitch + 12 * np.ceil((low - pitch) / 12), pitch)
    return np.where(pitch > high, pitch - 12 * np.ceil((pitch - high) / 12), pitch).astype(int)


def quarters_to_seconds(score, qpm: float | None):
    """Function mapping score offsets (quarters) to seconds: at `qpm`, else the score's marks."""
    from music21 import tempo

    marked = any(m.getQuarterBPM() for m in
                 score.flatten().getElementsByClass(tempo.MetronomeMark))
    spans = score.metronomeMarkBoundaries()
    starts = np.array([s for s, _, _ in spans], dtype=float)
    rates = np.array([60.0 / float(np.clip(m.getQuarterBPM() or 100.0, 40.0, 200.0))
                      if marked and qpm is None else 60.0 / (qpm or 100.0)
                      for _, _, m in spans])  # seconds per quarter
    ends = np.array([e for _, e, _ in spans], dtype=float)
    elapsed = np.concatenate([[0.0], np.cumsum((ends - starts) * rates)])

    def convert(quarters: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(starts, quarters, side="right") - 1, 0, len(starts) - 1)
        return elapsed[i] + (quarters - starts[i]) * rates[i]

    return convert


def humanise(notes: dict, to_seconds, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seconds-based performance: tempo scaling, slow rubato, onset jitter, velocities.

    Returns onset (s), duration (s), pitch and velocity arrays for a single piano track.
    """
    scale = 1.0 / rng.uniform(0.92, 1.08)
    period, phase, depth = rng.uniform(6.0, 14.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.08)
    lead_in = rng.uniform(0.3, 1.0)

    def warp(quarters):  # s; slow sinusoidal rubato, monotonic since 2 pi depth / period < 1
        t = to_seconds(quarters) * scale
        return lead_in + t + depth * np.sin(2 * np.pi * t / period + phase)

    start, end = warp(notes["start"]), warp(notes["end"])
    onset = start + np.clip(rng.normal(0.0, 0.007, start.shape), -0.02, 0.02)
    onset = np.maximum(onset, 0.05)
    duration = np.maximum((end - start) * rng.uniform(0.85, 0.97), 0.05)
    velocity = (rng.uniform(52, 78) + 10 * np.sin(2 * np.pi * start / rng.uniform(8, 20) + phase)
                + 5 * (notes["part"] == 0) + 3 * (notes["start"] % 1 == 0)
                + rng.normal(0.0, 5.0, start.shape))
    return _one_voice_per_key({"onset": onset, "duration": duration, "pitch": notes["pitch"],
                               "velocity": np.clip(np.round(velocity), 20, 115).astype(int)})


def _one_voice_per_key(perf: dict) -> dict:
    """One piano track: unisons struck within 30 ms merge (louder kept), and a held key is
    released 5 ms before it is struck again."""
    order = np.lexsort((perf["onset"], perf["pitch"]))
    perf = {k: v[order] for k, v in perf.items()}
    same_key = perf["pitch"][1:] == perf["pitch"][:-1]
    merge = same_key & (perf["onset"][1:] - perf["onset"][:-1] < 0.03)  # note i joins note i+1
    velocity = perf["velocity"]
    velocity[1:][merge] = np.maximum(velocity[1:], velocity[:-1])[merge]
    perf = {k: v[np.concatenate([~merge, [True]])] for k, v in perf.items()}
    same_key = perf["pitch"][1:] == perf["pitch"][:-1]
    latest_end = perf["onset"][1:] - 0.005
    end = perf["onset"] + perf["duration"]
    end[:-1] = np.where(same_key, np.minimum(end[:-1], latest_end), end[:-1])
    perf["duration"] = np.maximum(end - perf["onset"], 0.02)
    order = np.argsort(perf["onset"], kind="stable")
    return {k: v[order] for k, v in perf.items()}


# ---------------------------------------------------------------------------------------------
# Performance -> MIDI -> audio


def write_midi(perf: dict, path: str) -> None:
    """Write the performance as a one-track piano MIDI file (program 0, 60 qpm), atomically."""
    from music21 import instrument, midi, note, stream, tempo

    part = stream.Part()
    part.coreInsert(0.0, instrument.Piano())
    part.coreInsert(0.0, tempo.MetronomeMark(number=60))
    for onset, length, pitch, velocity in zip(_on_grid(perf["onset"]),
                                              np.maximum(_on_grid(perf["duration"]), TIME_GRID),
                                              perf["pitch"], perf["velocity"]):
        tone = note.Note(midi=int(pitch), quarterLength=float(length))
        tone.volume.velocity = int(velocity)
        part.coreInsert(float(onset), tone)
    part.coreElementsChanged()
    score = stream.Score()
    score.insert(0, part)
    midi_file = midi.translate.streamToMidiFile(score)
    with atomic_path(path) as tmp:
        midi_file.open(tmp, "wb")
        midi_file.write()
        midi_file.close()


def _on_grid(seconds: np.ndarray) -> np.ndarray:
    """Times rounded to TIME_GRID (binary fractions keep music21's offsets exact floats)."""
    return np.round(seconds / TIME_GRID) * TIME_GRID


def render_midi(midi_path: str, sample_rate: int, soundfont: str, timeout: float) -> np.ndarray:
    """Render with the FluidSynth command line; float32 ``[samples, 2]``."""
    with tempfile.TemporaryDirectory(prefix="musika-fluidsynth-") as tmp:
        out = os.path.join(tmp, "render.wav")
        command = [find_fluidsynth(), "-ni", "-q", "-F", out, "-T", "wav", "-O", "float",
                   "-r", str(sample_rate), "-g", str(FLUIDSYNTH_GAIN), soundfont, midi_path]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RenderError(f"fluidsynth took longer than {timeout:.0f} s") from None
        if done.returncode != 0 or not os.path.exists(out):
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RenderError(f"fluidsynth failed (exit {done.returncode}): {detail[0]}")
        audio, rate = sf.read(out, dtype="float32", always_2d=True)
    if rate != sample_rate or audio.shape[1] != 2:
        raise RenderError(f"fluidsynth wrote {audio.shape[1]} channels at {rate} Hz")
    return audio


def widen(audio: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Light, mono-compatible stereo width added to the side signal (mid is unchanged): a
    0.4-1 ms comb of the mid (spreads the highs) and the low band panned a little to one side."""
    from scipy import signal

    mid, side = (audio[:, 0] + audio[:, 1]) / 2, (audio[:, 0] - audio[:, 1]) / 2
    delay = int(round(rng.uniform(0.4e-3, 1.0e-3) * sample_rate))
    delayed = np.concatenate([np.zeros(delay, mid.dtype), mid[:-delay]])
    low = signal.sosfilt(signal.butter(2, 250.0, fs=sample_rate, output="sos"), mid)
    side = side + rng.uniform(0.15, 0.3) * (mid - delayed) + rng.uniform(-0.15, 0.15) * low
    return np.stack([mid + side, mid - side], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The data set


def _file_stem(seed: int, position: int, piece: Piece) -> str:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", os.path.splitext(piece.name)[0].replace("/", "-"))
    return f"MUSIKA-Synth_piano_seed{seed}_{position:03d}_{slug}"


def render_piece(root: str, piece: Piece, position: int, seed: int, sample_rate: int,
                 soundfont: str) -> dict:
    """Perform, render and write one piece; returns its CSV row (without split)."""
    from music21 import corpus

    rng = common.item_rng(seed, "piano", position)
    qpm = rng.uniform(*CHORALE_QPM) if piece.chorale else piece.qpm
    score = corpus.parse(piece.name)
    perf = humanise(score_notes(score), quarters_to_seconds(score, qpm), rng)
    year = str(rng.choice(MAESTRO_YEARS))
    stem = f"{year}/{_file_stem(seed, position, piece)}"  # MAESTRO-style relative path
    midi_path, wav_path = (os.path.join(root, stem + ext) for ext in (".midi", ".wav"))
    os.makedirs(os.path.dirname(midi_path), exist_ok=True)
    write_midi(perf, midi_path)
    try:
        end = float(np.max(perf["onset"] + perf["duration"]))
        audio = render_midi(midi_path, sample_rate, soundfont, timeout=60.0 + end)
        audio = common.normalise_peak(widen(audio, rng, sample_rate))
        if not np.any(audio):
            raise RenderError("fluidsynth rendered silence")
    except BaseException:
        os.remove(midi_path)
        raise
    duration = common.write_wav(wav_path, audio, sample_rate)
    return {"canonical_composer": piece.composer, "canonical_title": piece.title, "year": year,
            "midi_filename": stem + ".midi", "audio_filename": stem + ".wav",
            "duration": duration}


def _rows(root: str, seed: int, sample_rate: int, soundfont: str):
    """CSV rows of successfully rendered pieces, in seeded order; a failing piece is warned
    about and skipped, and MAX_FAILURES_IN_A_ROW failures in a row stop the build."""
    failures = 0
    for position, piece in enumerate(piece_order(seed)):
        try:
            yield render_piece(root, piece, position, seed, sample_rate, soundfont)
            failures = 0
        except Exception as error:  # noqa: BLE001 - music21 parse errors have no common base
            failures += 1
            reason = f"{piece.name}: {type(error).__name__}: {error}"
            if failures == MAX_FAILURES_IN_A_ROW:
                raise RenderError(f"{failures} pieces failed in a row, the last {reason}") from error
            common.warn(f"piano: skipping {reason}")


def build_piano_dataset(root: str, minutes: float = DEFAULT_MINUTES, seed: int = 0,
                        sample_rate: int = 44100, progress: bool = True) -> common.BuildSummary:
    """Synthesise about `minutes` of piano audio into `root` in the MAESTRO v3 layout.

    Writes `maestro-v3.0.0.csv` (MAESTRO's columns, relative paths, duration in s) and
    `YYYY/<name>.midi` + `YYYY/<name>.wav` (16-bit stereo at `sample_rate` Hz). Pieces are added
    until the total reaches `minutes`. Idempotent: a build with the same parameters is reused.
    """
    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    find_fluidsynth()
    soundfont = find_soundfont()
    params = {"dataset": "piano", "format": FORMAT_VERSION, "minutes": float(minutes),
              "seed": int(seed), "sample_rate": int(sample_rate),
              "soundfont": os.path.basename(soundfont)}
    return common.build_dataset(root, "piano", CSV_NAME, COLUMNS, FILE_COLUMNS, params,
                                _rows(root, seed, sample_rate, soundfont), minutes, progress)
