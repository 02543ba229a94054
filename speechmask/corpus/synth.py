"""`speechmask data synth`: the built-in multi-speaker SLU corpus, parallel, resumable, seeded."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf

from ..audio import SAMPLE_RATE, atomic_write_text, write_wav
from ..errors import CorpusError
from ..parallel import default_jobs, progress_map
from .config import SynthConfig
from .manifest import assign_splits, write_manifest
from .templates import INTENTS, fill
from .voices import Voice, hash_seed, make_voices, render

CONFIG_NAME = "synth_config.json"
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Job:
    id: str
    path: str  # relative to the corpus folder
    text: str
    voice: Voice
    seed: int


def plan(cfg: SynthConfig) -> tuple[list[dict], list[Job]]:
    """Manifest rows (without duration) and render jobs; a pure function of `cfg`."""
    voices = make_voices(cfg.speakers, cfg.engines, cfg.seed)
    intents = sorted(INTENTS)
    rows, jobs = [], []
    for s, voice in enumerate(voices):
        speaker = f"spk{s:03d}"
        rng = random.Random(hash_seed("utterances", cfg.seed, s))
        order: list[str] = []
        for j in range(cfg.utterances_per_speaker):
            if j % len(intents) == 0:  # every speaker covers the intents evenly
                order = intents[:]
                rng.shuffle(order)
            intent = order[j % len(intents)]
            sentence = fill(intent, rng.randrange(len(INTENTS[intent])), rng)
            uid = f"{speaker}_{j:04d}"
            path = f"{speaker}/{uid}.wav"
            rows.append({"id": uid, "path": path, "speaker": speaker, "gender": voice.gender,
                         "duration_s": None, "transcript": sentence.transcript,
                         "intent": sentence.intent, "slots": sentence.slots,
                         "entities": sentence.entities, "split": None, "speaker_split": None,
                         "corpus": "speechmask-synth", "voice": voice.describe(),
                         "template": sentence.template})
            jobs.append(Job(uid, path, sentence.transcript, voice, hash_seed("audio", cfg.seed, uid)))
    assign_splits(rows, cfg.seed)
    return rows, jobs


def _run_job(args: tuple[Job, str]) -> tuple[str, float, bool]:
    """Render one utterance unless a valid WAV is already there. Returns (id, seconds, rendered)."""
    job, root = args
    out = Path(root) / job.path
    if out.exists():
        try:
            info = sf.info(str(out))
            if info.samplerate == SAMPLE_RATE and info.frames > 0:
                return job.id, info.frames / SAMPLE_RATE, False
        except (sf.LibsndfileError, RuntimeError):
            pass  # unreadable leftover: render it again
    wave = render(job.voice, job.text, job.seed)
    write_wav(out, wave)
    return job.id, wave.size / SAMPLE_RATE, True


def synthesize(out: Path, cfg: SynthConfig, *, jobs: int | None = None, force: bool = False,
               progress: bool | None = None) -> dict:
    """Generate (or finish) the corpus in `out`. Returns a summary dict.

    Re-running with the same settings skips finished WAVs; other settings need `force`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CorpusError(f"{out}: exists and is not a folder")
    cfg_path = out / CONFIG_NAME
    if cfg_path.exists() and not force:
        try:
            old = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CorpusError(f"{cfg_path}: unreadable ({exc}); use --force to regenerate") from None
        if old != cfg.to_dict():
            raise CorpusError(f"{out}: holds a corpus made with other settings ({old}); "
                              "use --force to regenerate it or choose another --out")
    elif not cfg_path.exists() and out.is_dir() and any(out.iterdir()) and not force:
        raise CorpusError(f"{out}: folder is not empty and holds no speechmask corpus "
                          "(use --force or another --out)")
    rows, work = plan(cfg)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*/.*.tmp"):  # leftovers of a killed run (never a finished WAV)
        stale.unlink()
    if force:
        for job in work:
            (out / job.path).unlink(missing_ok=True)
    atomic_write_text(cfg_path, json.dumps(cfg.to_dict(), indent=2) + "\n")
    durations, rendered = {}, 0
    for uid, seconds, new in progress_map(_run_job, [(j, str(out)) for j in work],
                                          jobs=jobs or default_jobs(), desc="synthesizing",
                                          disable=progress is False):
        durations[uid] = round(seconds, 4)
        rendered += new
    for row in rows:
        row["duration_s"] = durations[row["id"]]
    write_manifest(out / MANIFEST_NAME, rows, force=True)
    return {"manifest": str(out / MANIFEST_NAME), "utterances": len(rows), "rendered": rendered,
            "skipped": len(rows) - rendered, "speakers": cfg.speakers}
