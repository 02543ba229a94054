"""Shared fixtures: a tiny built-in corpus rendered once per test session (real TTS voices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechmask.corpus.synth import SynthConfig, synthesize
from speechmask.corpus.voices import resolve_engines

TINY = dict(speakers=6, utterances_per_speaker=4, seed=3)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """6 speakers x 4 utterances (both engines when installed); returns the manifest path."""
    out = tmp_path_factory.mktemp("corpus")
    synthesize(out, SynthConfig(**TINY, engines=resolve_engines(None)), jobs=2, progress=False)
    return out / "manifest.jsonl"
