"""Speaker voices of the built-in corpus: espeak-ng accents x variants x pitch x rate, flite voices,
each with its own vocal-tract-length warp and microphone channel, rendered to 16 kHz audio."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, resample
from ..errors import CorpusError

ENGINES = ("espeak-ng", "flite")
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng voice variants (file names under espeak-ng-data/voices/!v) of a clear gender; the
# novelty ones (robots, whisper, croak, demonic) are left out.
ESPEAK_VARIANTS = {
    "m": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "adam", "Alex", "Andy", "antonio",
          "benjamin", "boris", "caleb", "david", "Denis", "Diogo", "ed", "edward", "Gene",
          "Hugo", "iven", "Jacky", "john", "Lee", "Marco", "Mario", "max", "Michael", "Mike",
          "pablo", "paul", "pedro", "quincy", "rob", "robert", "norbert", "sandro", "shelby",
          "travis", "victor", "klatt", "klatt2", "klatt3", "grandpa"),
    "f": ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda",
          "linda", "steph", "steph2", "steph3", "anika", "grandma"),
}
FLITE_VOICES = {"m": ("kal16", "awb", "rms"), "f": ("slt",)}


@dataclass(frozen=True)
class Voice:
    """One speaker's voice: engine settings plus a channel (all fixed across its utterances)."""

    engine: str
    name: str  # espeak-ng "accent+variant" or flite voice
    gender: str
    pitch: int  # espeak-ng -p (0-99) or flite f0 mean in Hz
    rate: float  # espeak-ng words per minute, or flite duration stretch
    vtl_warp: float  # resampling factor: >1 shortens the vocal tract (higher formants)
    lowpass_hz: float  # microphone bandwidth
    level_dbfs: float  # speaking level

    def describe(self) -> str:
        return (f"{self.engine}:{self.name}:p{self.pitch}:r{self.rate:g}:vtl{self.vtl_warp:.3f}:"
                f"lp{int(self.lowpass_hz)}")

    def to_dict(self) -> dict:
        return asdict(self)


def available_engines() -> tuple[str, ...]:
    return tuple(e for e in ENGINES if shutil.which(e))


def resolve_engines(requested: str | None) -> tuple[str, ...]:
    """Engines to use: the requested ones (each must be installed) or, by default, every
    installed one. Raises CorpusError naming the missing program."""
    have = available_engines()
    if requested is None:
        if "espeak-ng" not in have:
            raise CorpusError("espeak-ng not found on PATH (install it: apt-get install espeak-ng)")
        return have
    wanted = tuple(e.strip() for e in requested.split(",") if e.strip())
    for e in wanted:
        if e not in ENGINES:
            raise CorpusError(f"unknown TTS engine {e!r} (choose from {', '.join(ENGINES)})")
        if e not in have:
            raise CorpusError(f"{e} not found on PATH (install it: apt-get install {e})")
    if not wanted:
        raise CorpusError("--engines is empty")
    return wanted


def make_voices(n: int, engines: tuple[str, ...], seed: int) -> list[Voice]:
    """`n` distinct voices, alternating gender (balanced), deterministic for `seed`.
    Every third speaker uses flite when it is among `engines` (its voices are the more
    intelligible to ASR; espeak-ng gives the speaker variety)."""
    rng = random.Random(f"voices:{seed}")
    pools = {g: [(a, v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS[g]] for g in "mf"}
    for pool in pools.values():
        rng.shuffle(pool)
    voices, used = [], set()
    for i in range(n):
        gender = "m" if i % 2 == 0 else "f"
        use_flite = "flite" in engines and (i % 3 == 2 or engines == ("flite",))
        if use_flite:
            name = FLITE_VOICES[gender][(i // 3) % len(FLITE_VOICES[gender])]
            pitch = rng.randint(90, 135) if gender == "m" else rng.randint(165, 230)
            rate = round(rng.uniform(0.9, 1.15), 2)
            engine = "flite"
        else:
            accent, variant = pools[gender][(i // 2) % len(pools[gender])]
            name, engine = f"{accent}+{variant}", "espeak-ng"
            pitch = rng.randint(25, 60) if gender == "m" else rng.randint(45, 80)
            rate = float(rng.randint(120, 165))  # slower than the default 175 wpm: clearer
        voice = Voice(engine, name, gender, pitch, rate,
                      vtl_warp=round(rng.uniform(0.93, 1.07), 3),
                      lowpass_hz=float(rng.choice((3800, 4500, 5500, 6500, 7600))),
                      level_dbfs=round(rng.uniform(-26, -16), 1))
        key = (voice.engine, voice.name, voice.pitch)
        if key in used:  # vanishingly rare; nudge the pitch to keep speakers distinct
            voice = Voice(**{**voice.to_dict(), "pitch": voice.pitch + 1})
        used.add((voice.engine, voice.name, voice.pitch))
        voices.append(voice)
    return voices


def _tts(voice: Voice, text: str, rate_jitter: float, workdir: str) -> tuple[np.ndarray, int]:
    out = os.path.join(workdir, "tts.wav")
    if voice.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch),
               "-s", str(int(round(voice.rate * rate_jitter))), "-w", out, text]
    else:
        cmd = ["flite", "-voice", voice.name, "--setf", f"int_f0_target_mean={voice.pitch}",
               "--setf", f"duration_stretch={voice.rate / rate_jitter:.3f}", "-t", text, "-o", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not os.path.exists(out):
        raise CorpusError(f"{voice.engine} failed for voice {voice.name}: "
                          f"{proc.stderr.strip() or proc.returncode}")
    data, sr = sf.read(out, dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def render(voice: Voice, text: str, seed: int) -> np.ndarray:
    """Speak `text` in `voice`: TTS, vocal-tract warp, channel, level, room noise, silences.
    Deterministic for `seed`. Returns float32 `(n_samples,)` at 16 kHz."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="speechmask-tts-") as workdir:
        speech, sr = _tts(voice, text, rate_jitter=float(rng.uniform(0.94, 1.06)), workdir=workdir)
    # resampling as if recorded at sr * warp scales formants and pitch together (a VTL change)
    speech = resample(speech, int(round(sr * voice.vtl_warp)), SAMPLE_RATE)
    speech = sosfilt(butter(2, [70, voice.lowpass_hz], "bandpass", fs=SAMPLE_RATE, output="sos"),
                     speech)
    rms = float(np.sqrt(np.mean(speech ** 2))) or 1.0
    speech = speech * (10 ** (voice.level_dbfs / 20) / rms)
    lead, tail = (int(rng.uniform(0.05, 0.3) * SAMPLE_RATE) for _ in range(2))
    wave = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    noise = sosfilt(butter(1, 1500, "lowpass", fs=SAMPLE_RATE, output="sos"),
                    rng.standard_normal(wave.size))  # brown-ish room noise
    snr_db = rng.uniform(20, 40)
    noise *= 10 ** ((voice.level_dbfs - snr_db) / 20) / (np.sqrt(np.mean(noise ** 2)) or 1.0)
    return np.clip(wave + noise, -1.0, 0.999).astype(np.float32)


def hash_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (Python's hash() is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1
