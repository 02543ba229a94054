"""`SynthConfig`: what determines the built-in corpus, torch-free so that the CLI reads its
defaults from it at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..options import check_int, option

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    """What determines the corpus; stored beside it so a rerun can resume or refuse a clash."""

    speakers: int = option(30, "distinct voices (at least 2: one of each gender)")
    utterances_per_speaker: int = option(40, "utterances each voice speaks")
    seed: int = option(0, "seed of voices, sentences and splits")
    engines: tuple[str, ...] = ("espeak-ng", "flite")
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_int(self.speakers, "speakers", low=2)
        check_int(self.utterances_per_speaker, "utterances_per_speaker")
        check_int(self.seed, "seed", low=0)

    def to_dict(self) -> dict:
        return {**asdict(self), "engines": list(self.engines)}
