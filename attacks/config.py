"""The attack suite's configs, torch-free: `speechmask attack` reads its defaults from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from speechmask.errors import ConfigError
from speechmask.options import check_choice, check_int, check_number, option

from . import systems

ATTACKS = ("pocketsphinx", "passive", "informed", "inpainting", "speaker")
POCKETSPHINX_LMS = ("domain", "generic")
STRENGTHS = ("quick", "full")


@dataclass(frozen=True)
class ContentConfig:
    """Training of the content attackers (CTC ASR and inpainter)."""

    asr_steps: int = 1000  # passive ASR on clean training speech
    informed_steps: int = 200  # fine-tuning on what the protection sends (log-mel)
    transfer_steps: int = 300  # the same for another representation (a new input layer)
    inpaint_steps: int = 150
    asr_lr: float = 2e-3
    finetune_lr: float = 7e-4
    # the ASR's width (channels, hidden units): the suite trains six ASRs, so this trades clean
    # WER against time; benchmarks/bench_attack.py measures both, CHANGELOG.md the alternatives
    asr_channels: int = 160
    asr_hidden: int = 128

    def __post_init__(self) -> None:
        for name in ("asr_steps", "informed_steps", "transfer_steps", "inpaint_steps",
                     "asr_channels", "asr_hidden"):
            check_int(getattr(self, name), name)
        for name in ("asr_lr", "finetune_lr"):
            check_number(getattr(self, name), name, low=0, strict_low=True)


@dataclass(frozen=True)
class SpeakerConfig:
    """Training of the x-vector attackers and the VoicePrivacy trial lists."""

    steps: int = 400  # embedder on clean training speakers
    informed_steps: int = 150  # semi-informed: fine-tuned on what the protection sends (log-mel)
    transfer_steps: int = 200  # the same for another representation (a new input layer)
    crop_frames: int = 200  # training crops of 2 s
    enroll_per_speaker: int = 5  # enrollment utterances per test speaker
    lr: float = 2e-3

    def __post_init__(self) -> None:
        for name in ("steps", "informed_steps", "transfer_steps", "crop_frames",
                     "enroll_per_speaker"):
            check_int(getattr(self, name), name)
        check_number(self.lr, "lr", low=0, strict_low=True)


@dataclass(frozen=True)
class BaselineConfig:
    """Training of the learned baselines and the random mask's rate."""

    random_open: float = 0.5
    vae_steps: int = 300
    ppslu_steps: int = 500
    crop_frames: int = 160  # VAE training crops (1.6 s)
    adversary: float = 0.5  # gradient-reversal weight of the VAE's speaker adversary
    # PPSLU: share of its steps trained with a forward CTC auxiliary and no adversary, then the
    # final weight of its (speaker and CTC) adversaries; the weight trades its intent accuracy
    # against what its representation leaks (benchmarks/bench_attack.py's ppslu row; the
    # weights tried are in CHANGELOG.md)
    ppslu_warmup: float = 0.5
    ppslu_adversary: float = 0.2

    def __post_init__(self) -> None:
        check_number(self.random_open, "random_open", low=0, high=1)
        for name in ("vae_steps", "ppslu_steps", "crop_frames"):
            check_int(getattr(self, name), name)
        check_number(self.adversary, "adversary", low=0)
        check_number(self.ppslu_warmup, "ppslu_warmup", low=0, high=1)
        check_number(self.ppslu_adversary, "ppslu_adversary", low=0)


@dataclass(frozen=True)
class SuiteConfig:
    """Everything the suite's numbers depend on (stored in report.json). The fields with a help
    text are `speechmask attack`'s flags. `systems` default: every registered baseline and the
    float mask (`systems.default_systems`)."""

    systems: tuple[str, ...] = field(default_factory=systems.default_systems)
    attacks: tuple[str, ...] = option(ATTACKS, "attackers to run", choices=ATTACKS)
    seed: int = option(0, "seed of every attacker, learned baseline and the random mask")
    max_steps: int | None = option(None, "bound every training inside the suite (quick runs)")
    slu_finetune_steps: int = 200  # cloud model fine-tuned on each protection's output
    # pyctcdecode's default beam width; only decoding reads it (no cached attacker depends on it)
    beam_width: int = option(
        100, "beam width of the trained ASRs' CTC beam search (a narrower beam decodes faster and "
             "reads fewer words: for smoke runs, never for figures)")
    pocketsphinx_utterances: int | None = option(
        None, "decode at most this many test utterances with PocketSphinx",
        flag="--pocketsphinx-max")
    pocketsphinx_lm: str = option(
        "domain", "PocketSphinx's language model: domain, a bigram of the training transcripts "
                  "(an attacker who knows the application), or generic, the wheel's general "
                  "en-US model", choices=POCKETSPHINX_LMS)
    strength: str = option(
        "quick", "quick: short fixed trainings (tests, the demo); full: every attacker trains "
                 "until its dev loss stops improving, with wider ASRs (the suite's real "
                 "figures)", choices=STRENGTHS)
    content: ContentConfig = field(default_factory=ContentConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)

    def __post_init__(self) -> None:
        check_choice(self.strength, "strength", STRENGTHS)
        if self.strength == "full":  # the full-strength settings, unless given explicitly
            if self.content == ContentConfig():
                object.__setattr__(self, "content", FULL_CONTENT)
            if self.speaker == SpeakerConfig():
                object.__setattr__(self, "speaker", FULL_SPEAKER)
        known = systems.names()
        for name in self.systems:
            if name not in known:
                raise ConfigError(f"systems: unknown system {name!r} (choose from "
                                  f"{', '.join(known)})", field="systems")
        for name in self.attacks:
            check_choice(name, "attacks", ATTACKS)
        check_int(self.seed, "seed", low=0)
        check_int(self.max_steps, "max_steps", optional=True)
        check_int(self.slu_finetune_steps, "slu_finetune_steps")
        check_int(self.beam_width, "beam_width")
        check_int(self.pocketsphinx_utterances, "pocketsphinx_utterances", optional=True)
        check_choice(self.pocketsphinx_lm, "pocketsphinx_lm", POCKETSPHINX_LMS)

    def steps(self, n: int) -> int:
        return n if self.max_steps is None else max(1, min(n, self.max_steps))

    @property
    def early_stop(self) -> tuple[int, int] | None:
        """(evaluate every N steps, patience) at full strength; None at quick."""
        return EARLY_STOP if self.strength == "full" else None


#: `--strength full`: every attacker trains until its dev loss stops improving (`EARLY_STOP`),
#: the step counts below being caps, and the ASRs are wider; the quick defaults above are what
#: `make test` and the demo run. A full-strength attacker is never weaker than a quick one: it
#: trains at least as long on the same data, and keeps the weights of its best dev loss.
FULL_CONTENT = ContentConfig(asr_steps=12000, informed_steps=6000, transfer_steps=6000,
                             inpaint_steps=6000, asr_channels=256, asr_hidden=256)
FULL_SPEAKER = SpeakerConfig(steps=8000, informed_steps=4000, transfer_steps=4000)
#: (dev evaluation every N steps, evaluations without improvement before stopping)
EARLY_STOP = (200, 6)
