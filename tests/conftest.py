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


@pytest.fixture(scope="session")
def slu_path(tiny_corpus, tmp_path_factory) -> Path:
    """A cloud model trained for a few steps on the tiny corpus (enough to exercise the code)."""
    from speechmask.train.loop import TrainConfig
    from speechmask.train.slu import train_slu

    out = tmp_path_factory.mktemp("slu") / "slu.pt"
    train_slu(tiny_corpus, out, TrainConfig(max_steps=12, batch_size=8, eval_every=4,
                                            progress=False, device="cpu"))
    return out


@pytest.fixture(scope="session")
def mask_path(tiny_corpus, slu_path, tmp_path_factory) -> Path:
    from speechmask.models.mask import MaskConfig
    from speechmask.train.loop import TrainConfig
    from speechmask.train.mask import ObjectiveConfig, train_mask

    out = tmp_path_factory.mktemp("mask") / "mask.pt"
    train_mask(tiny_corpus, slu_path, out, MaskConfig(), ObjectiveConfig(),
               TrainConfig(max_steps=16, batch_size=8, eval_every=8, lr=0.01, progress=False,
                           device="cpu"))
    return out


@pytest.fixture(scope="session")
def export_dir(tiny_corpus, mask_path, tmp_path_factory) -> Path:
    """`speechmask export` of the tiny mask: the int8 model, generated C and test vectors."""
    from firmware_export.pipeline import export

    out = tmp_path_factory.mktemp("export") / "fw"
    export(mask_path, tiny_corpus, out, progress=False)
    return out
