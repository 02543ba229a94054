"""Passive content attacker: PocketSphinx ASR (its en-US model ships in the wheel, no download)."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Iterable

import numpy as np
from pocketsphinx import Decoder
from tqdm.auto import tqdm

from speechmask.audio import SAMPLE_RATE, to_pcm16

# One decoder per process, built on first use (or by the pool initializer) and reused: building
# one loads the acoustic model, language model and dictionary (about 0.25 s).
_decoder: Decoder | None = None


def _new_decoder() -> Decoder:
    """The wheel's default en-US model (16 kHz), batch CMN, logging off except fatal errors."""
    return Decoder(loglevel="FATAL")


def _process_decoder() -> Decoder:
    global _decoder
    if _decoder is None:
        _decoder = _new_decoder()
    return _decoder


def _init_worker() -> None:
    """Pool initializer: a fresh decoder of the worker's own, never one inherited by fork."""
    global _decoder
    _decoder = _new_decoder()


def _is_word(token: str) -> bool:
    """False for sentence marks and fillers: <s>, </s>, <sil>, [NOISE], [SPEECH], ++GARBAGE++."""
    return not token.startswith(("<", "[", "+"))


def _base_word(token: str) -> str:
    """`read(2)` -> `read`: drop the alternate-pronunciation marker."""
    if token.endswith(")") and "(" in token:
        return token[:token.rindex("(")]
    return token


def transcribe(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """Float waveform `(n_samples,)` in [-1, 1] at 16 kHz -> lowercase words, single-spaced.

    Silence and all-zero input give "". Raises ValueError for another sample rate or a
    waveform that is not 1-D.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"PocketSphinx's en-US model needs {SAMPLE_RATE} Hz audio, got "
                         f"{sample_rate} Hz (resample first)")
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {wave.shape}")
    pcm = to_pcm16(wave).astype("<i2")  # clips to [-1, 1] before scaling
    if not pcm.any():  # digital silence: the decoder would guess "of"; no samples: it raises
        return ""
    decoder = _process_decoder()
    # The front-end carries its noise estimate over from the last utterance; resetting it (about
    # 0.1 ms) makes the transcript depend on this waveform only, not on what the process saw.
    decoder.reinit_feat()
    decoder.start_utt()
    try:
        decoder.process_raw(pcm.tobytes(), full_utt=True)
    finally:
        decoder.end_utt()  # a failed call must not leave the reused decoder mid-utterance
    hypothesis = decoder.hyp()
    if hypothesis is None:
        return ""
    words = (_base_word(token) for token in hypothesis.hypstr.split() if _is_word(token))
    return " ".join(words).lower()


def transcribe_many(waves: Iterable[np.ndarray], jobs: int | None = None, progress: bool = True,
                    desc: str = "pocketsphinx") -> list[str]:
    """`transcribe` every 16 kHz waveform over `jobs` processes (default min(2, cores)).

    Returns the transcripts in input order. With `jobs <= 1` it runs in this process.
    """
    waves = list(waves)
    jobs = min(2, os.cpu_count() or 1) if jobs is None else jobs
    bar = dict(total=len(waves), desc=desc, unit="utt", disable=not progress, dynamic_ncols=True)
    if jobs <= 1 or len(waves) <= 1:
        return [transcribe(wave) for wave in tqdm(waves, **bar)]
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(processes=min(jobs, len(waves)), initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(transcribe, waves), **bar))
