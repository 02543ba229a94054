"""Passive content attacker: PocketSphinx ASR (its en-US model ships in the wheel, no download).

By default it decodes with the wheel's general en-US language model. The suite gives it a domain
language model instead (`domain_lm`: a bigram over the attacker's training transcripts), as an
attacker who knows the application would (benchmarks/bench_attack.py's wer_pocketsphinx; the
comparison with the general model is in CHANGELOG.md).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from pocketsphinx import Config, Decoder
from tqdm.auto import tqdm

from speechmask.audio import SAMPLE_RATE, to_pcm16

from .decoding import bigram_arpa

# One decoder per process, built on first use (or by the pool initializer) and reused: building
# one loads the acoustic model, language model and dictionary, which costs more than decoding a
# short utterance.
_decoder: Decoder | None = None
_decoder_lm: str | None = None
_aligner: Decoder | None = None  # `align`'s, built on first use


def _new_decoder(lm: str | None = None) -> Decoder:
    """The wheel's en-US acoustic model and dictionary (16 kHz), batch CMN, logging off except
    fatal errors; the wheel's language model unless `lm` (an ARPA file) is given."""
    return Decoder(loglevel="FATAL", **({"lm": lm} if lm else {}))


def _process_decoder(lm: str | None = None) -> Decoder:
    global _decoder, _decoder_lm
    if _decoder is None or _decoder_lm != lm:
        _decoder, _decoder_lm = _new_decoder(lm), lm
    return _decoder


def _init_worker(lm: str | None = None) -> None:
    """Pool initializer: a fresh decoder of the worker's own, never one inherited by fork."""
    global _decoder, _decoder_lm
    _decoder, _decoder_lm = _new_decoder(lm), lm


def dictionary_words() -> set[str]:
    """The words the wheel's pronunciation dictionary can decode (alternates folded)."""
    with open(Config()["dict"], encoding="utf-8") as f:
        return {_base_word(line.split(maxsplit=1)[0]) for line in f if line.strip()}


def domain_lm(transcripts: Iterable[str], path: Path) -> Path:
    """Write the ARPA bigram of `transcripts` (`decoding.bigram_arpa`) to `path` and return it,
    without the words the dictionary lacks (the decoder cannot say them)."""
    try:
        return bigram_arpa(transcripts, path, known=dictionary_words())
    except ValueError:
        raise ValueError("domain_lm: no transcript has a word in PocketSphinx's dictionary") \
            from None


def _is_word(token: str) -> bool:
    """False for sentence marks and fillers: <s>, </s>, <sil>, [NOISE], [SPEECH], ++GARBAGE++."""
    return not token.startswith(("<", "[", "+"))


def _base_word(token: str) -> str:
    """`read(2)` -> `read`: drop the alternate-pronunciation marker."""
    if token.endswith(")") and "(" in token:
        return token[:token.rindex("(")]
    return token


def transcribe(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, lm: str | None = None) -> str:
    """Float waveform `(n_samples,)` in [-1, 1] at 16 kHz -> lowercase words, single-spaced,
    decoded with the language model `lm` (an ARPA file; default: the wheel's en-US model).

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
    decoder = _process_decoder(lm)
    _decode(decoder, pcm)
    hypothesis = decoder.hyp()
    if hypothesis is None:
        return ""
    words = (_base_word(token) for token in hypothesis.hypstr.split() if _is_word(token))
    return " ".join(words).lower()


def align(wave: np.ndarray, transcript: str) -> list[tuple[float, float]] | None:
    """Where each word of `transcript` lies in the 16 kHz float waveform `wave`: one
    (start_s, end_s) per word, in order, by PocketSphinx's forced alignment (its en-US acoustic
    model and dictionary; 10 ms frames). None when the dictionary lacks a word or the alignment
    fails (digital silence, a transcript that does not fit)."""
    words = transcript.lower().split()
    pcm = to_pcm16(np.asarray(wave)).astype("<i2")
    if not words or not pcm.any():
        return None
    global _aligner
    if _aligner is None:  # alignment keeps the first pass's word times (no best-path rescoring)
        _aligner = Decoder(loglevel="FATAL", bestpath=False)
    decoder = _aligner
    try:
        decoder.set_align_text(" ".join(words))
    except RuntimeError:  # a word outside the dictionary
        return None
    _decode(decoder, pcm)
    segments = decoder.seg()
    if segments is None:  # the search found no path through the forced text
        return None
    frame_s = 1.0 / int(decoder.config["frate"])
    spans = [(seg.start_frame * frame_s, (seg.end_frame + 1) * frame_s)
             for seg in segments if _is_word(seg.word)]
    return spans if len(spans) == len(words) else None


def _decode(decoder: Decoder, pcm: np.ndarray) -> None:
    """One whole utterance of int16 `pcm` through a reused `decoder`. The front-end carries its
    noise estimate over from the last utterance; resetting it (cheap beside decoding) makes the
    result depend on this waveform only, not on what the process saw."""
    decoder.reinit_feat()
    decoder.start_utt()
    try:
        decoder.process_raw(pcm.tobytes(), full_utt=True)
    finally:
        decoder.end_utt()  # a failed call must not leave the reused decoder mid-utterance


def transcribe_many(waves: Iterable[np.ndarray], jobs: int | None = None, progress: bool = True,
                    desc: str = "pocketsphinx", lm: Path | str | None = None) -> list[str]:
    """`transcribe` every 16 kHz waveform over `jobs` processes (default min(2, cores)).

    Returns the transcripts in input order. With `jobs <= 1` it runs in this process.
    """
    waves = list(waves)
    lm = str(lm) if lm else None
    jobs = min(2, os.cpu_count() or 1) if jobs is None else jobs
    bar = dict(total=len(waves), desc=desc, unit="utt", disable=not progress, dynamic_ncols=True)
    if jobs <= 1 or len(waves) <= 1:
        return [transcribe(wave, lm=lm) for wave in tqdm(waves, **bar)]
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(processes=min(jobs, len(waves)), initializer=_init_worker,
                  initargs=(lm,)) as pool:
        return list(tqdm(pool.imap(functools.partial(transcribe, lm=lm), waves), **bar))
