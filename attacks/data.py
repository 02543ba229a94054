"""What the suite reads (a manifest, its clean features and splits) and what a protection sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from speechmask.audio import SAMPLE_RATE, read_adc
from speechmask.corpus.manifest import resolve_audio
from speechmask.errors import ManifestError
from speechmask.features import FrontendConfig
from speechmask.models.gates import floor_value
from speechmask.train.data import FeatureSet, load_features

# The share of a training speaker's utterances held out for the speaker attackers' early stopping
# when the split names none of theirs 'dev' (one in 8; the built-in split gives them 15 %).
SPEAKER_DEV_EVERY = 8


class AttackError(ManifestError):
    """Data the attack suite cannot evaluate on (missing splits, too few speakers, ...)."""


@dataclass
class SuiteData:
    """A manifest, its clean log-mel features and the two splits the suite uses: `split_field`
    (content attackers and utility: train on 'train', score on 'test') and the speaker-disjoint
    `speaker_split` (speaker attackers: trained on 'train' speakers, trials among 'test')."""

    fs: FeatureSet
    split_field: str = "split"
    content_train: list[int] = field(default_factory=list)
    content_test: list[int] = field(default_factory=list)
    content_dev: list[int] = field(default_factory=list)  # may be empty (quick strength)
    speaker_train: list[int] = field(default_factory=list)
    speaker_test: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, manifest: Path, frontend: FrontendConfig, split_field: str = "split",
             progress: bool = True) -> "SuiteData":
        if frontend.sample_rate != SAMPLE_RATE:
            raise AttackError(f"the models expect {frontend.sample_rate} Hz audio; the suite and "
                              f"its attackers work at {SAMPLE_RATE} Hz")
        fs = load_features(manifest, frontend, progress=progress)
        data = cls(fs, split_field)
        data.content_train = _select(fs, split_field, "train")
        data.content_test = _select(fs, split_field, "test")
        data.content_dev = [i for i, r in enumerate(fs.rows) if r.get(split_field) == "dev"]
        data.speaker_train = _select(fs, "speaker_split", "train")
        data.speaker_test = _select(fs, "speaker_split", "test")
        overlap = {fs.rows[i]["speaker"] for i in data.speaker_train} & \
            {fs.rows[i]["speaker"] for i in data.speaker_test}
        if overlap:
            raise AttackError(f"{manifest}: speaker_split is not speaker-disjoint: "
                              f"{sorted(overlap)[:3]} in both train and test")
        return data

    @property
    def rows(self) -> list[dict]:
        return self.fs.rows

    @property
    def frontend(self) -> FrontendConfig:
        return self.fs.frontend

    @property
    def floor(self) -> float:
        return floor_value(self.fs.frontend)

    def wave(self, i: int) -> np.ndarray:
        """The utterance as the device's ADC delivers it: 16 kHz, 16-bit."""
        return read_adc(resolve_audio(self.fs.manifest, self.rows[i]))

    def speakers(self, idx: list[int]) -> list[str]:
        return sorted({self.rows[i]["speaker"] for i in idx})

    def by_speaker(self, idx: list[int]) -> dict[str, list[int]]:
        """The rows `idx` grouped by speaker, each speaker's in order of utterance id."""
        out: dict[str, list[int]] = {}
        for i in sorted(idx, key=lambda i: self.rows[i]["id"]):
            out.setdefault(self.rows[i]["speaker"], []).append(i)
        return out

    def speaker_dev_split(self) -> tuple[list[int], list[int]]:
        """The speaker attackers' training rows split for early stopping: (train, dev), dev
        being the training speakers' utterances in the utterance-level 'dev' part (the classes
        are the training speakers, so held-out utterances of theirs measure the fit). Where the
        split gives the training speakers no 'dev' utterances (the held-out split puts whole
        speakers in each part), every `SPEAKER_DEV_EVERY`-th utterance of each training speaker
        (by id) is held out instead."""
        dev = [i for i in self.speaker_train if self.rows[i].get("split") == "dev"]
        if not dev:
            for rows in self.by_speaker(self.speaker_train).values():
                dev += rows[SPEAKER_DEV_EVERY - 1::SPEAKER_DEV_EVERY]
        if not dev:
            raise AttackError(f"{self.fs.manifest}: full strength needs utterances of the "
                              "speaker_split training speakers to hold out for early stopping "
                              f"(split == 'dev', or at least {SPEAKER_DEV_EVERY} of a speaker)")
        held = set(dev)
        return [i for i in self.speaker_train if i not in held], sorted(dev)


def trained_split_field(slu_path: Path) -> str:
    """The split field the cloud model in `slu_path` was trained on (its checkpoint's training
    config): the content attackers and the utility score on the same one by default."""
    from speechmask.options import field_default
    from speechmask.train.checkpoint import load_checkpoint
    from speechmask.train.config import TrainConfig

    return load_checkpoint(slu_path, kind="slu").get("train_config", {}).get(
        "split_field", field_default(TrainConfig, "split_field"))


def _select(fs: FeatureSet, split_field: str, part: str) -> list[int]:
    idx = [i for i, r in enumerate(fs.rows) if r.get(split_field) == part]
    if not idx:
        raise AttackError(f"{fs.manifest}: no utterances with {split_field} == {part!r}; the "
                          "attack suite needs train and test parts of both 'split' and "
                          "'speaker_split'")
    return idx


@dataclass
class Sent:
    """What a protection sends for every manifest row: `features[i]` `(T_i / frame_stride, D)`.
    `log_mel`: features are log-mel frames (attackers trained on clean speech apply);
    `withheld[i]` `(T_i, n_mels)` bool marks positions the device did not send (inpainting
    applies); `audio(i)` is the protected waveform where the protection makes one; `intent(idx)`
    predicts intents itself where the protection has its own cloud model (PPSLU)."""

    features: list[np.ndarray]
    log_mel: bool = True
    frame_stride: int = 1
    withheld: list[np.ndarray] | None = None
    audio: Callable[[int], np.ndarray] | None = None
    intent: Callable[[list[int]], list[str]] | None = None
    open_fraction: float | None = None

    @property
    def dim(self) -> int:
        return int(self.features[0].shape[1])
