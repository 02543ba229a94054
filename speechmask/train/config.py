"""The trainers' configs, torch-free so that the CLI reads its defaults from them at once:
optimisation (`TrainConfig` and one subclass per trainer, each with its own defaults) and the
mask's objective (`ObjectiveConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from ..errors import ConfigError
from ..options import check_choice, check_int, check_number, option

SPLIT_FIELDS = ("split", "speaker_split")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the CLI flags map one-to-one onto these fields (`options`). Each
    trainer has its own subclass with its own defaults (`SLUTrainConfig`, `FinetuneConfig`,
    `MaskTrainConfig`), so a Python caller gets what the command line gets. With neither
    `epochs` nor `max_steps`, a run lasts `default_epochs` epochs or `default_steps` steps."""

    default_epochs: ClassVar[int | None] = None
    default_steps: ClassVar[int | None] = None

    epochs: int | None = option(None, "epochs (with --max-steps too, the shorter bound wins)")
    max_steps: int | None = option(None, "stop after this many steps")
    batch_size: int = option(32, "global batch (all processes)")
    lr: float = option(2e-3, "peak learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    seed: int = option(0, "seed of batches, noise and initial weights")
    eval_every: int = option(100, "dev evaluation + checkpoint every this many steps")
    split_field: str = option("split", "train/dev parts: utterance-level or speaker-disjoint",
                              choices=SPLIT_FIELDS)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda[:N]")
    amp: bool = option(True, "no bf16 autocast on CUDA", negative="--no-amp")
    progress: bool = option(True, "no progress bar", negative="--quiet")

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", optional=True)
        check_int(self.max_steps, "max_steps", optional=True)
        check_int(self.batch_size, "batch_size")
        check_number(self.lr, "lr", low=0, strict_low=True)
        check_number(self.weight_decay, "weight_decay", low=0)
        check_int(self.seed, "seed", low=0)
        check_int(self.eval_every, "eval_every")
        check_choice(self.split_field, "split_field", SPLIT_FIELDS)
        check_device(self.device)

    def total_steps(self, steps_per_epoch: int, trainer: type["TrainConfig"]) -> int:
        """--max-steps and --epochs both bound the run; with neither, the trainer's default
        length (`trainer`: its config class, whose `default_epochs` or `default_steps` count)."""
        bounds = []
        if self.epochs is not None:
            bounds.append(self.epochs * steps_per_epoch)
        if self.max_steps is not None:
            bounds.append(self.max_steps)
        if not bounds:
            bounds.append(trainer.default_steps if trainer.default_steps is not None
                          else (trainer.default_epochs or 1) * steps_per_epoch)
        steps = min(bounds)
        if steps < 1:
            raise ConfigError("--epochs/--max-steps leave no training step")
        return steps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def check_device(name: str) -> None:
    """ConfigError(field='device') for a device name torch does not know or this machine lacks."""
    if name == "auto":
        return
    import torch  # only here: the CLI builds its parser without torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N (got {name!r})",
                          field="device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this machine has no CUDA device (or this "
                              "torch build has no CUDA support)", field="device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA "
                              "device(s) here", field="device")
    elif device.type != "cpu":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N (got {name!r})",
                          field="device")


@dataclass(frozen=True)
class SLUTrainConfig(TrainConfig):
    """`train slu`: the cloud model from scratch on clean features."""

    default_epochs: ClassVar[int] = 60
    lr: float = option(2e-3, "peak learning rate")


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """`train finetune`: the cloud model continued on the mask's output."""

    default_epochs: ClassVar[int] = 15
    lr: float = option(5e-4, "peak learning rate")


@dataclass(frozen=True)
class MaskTrainConfig(TrainConfig):
    """`train mask`: the mask generator's optimisation. Its default length, 300 steps, lets the
    dev open fraction and KL settle on the built-in corpus (`benchmarks/bench_mask.py` logs
    them)."""

    default_steps: ClassVar[int] = 300
    lr: float = option(5e-3, "peak learning rate")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Minimise the expected L0 of the gates subject to KL(cloud clean || cloud masked) <= gamma,
    the multiplier raised by gradient ascent; optional adversaries through gradient reversal."""

    gamma: float = option(0.15, "KL budget in nats (SILENCE's)")
    lambda_init: float = option(1.0, "initial Lagrange multiplier (the KL term counts from the "
                                     "first step)")
    lambda_lr: float = option(0.05, "gradient-ascent step of the multiplier")
    lambda_max: float = option(50.0, "upper clamp of the multiplier")
    speaker_adversary: float = option(0.0, "weight of a speaker classifier's reversed gradient "
                                           "(0 = off)")
    asr_adversary: float = option(0.0, "weight of a CTC ASR's reversed gradient (0 = off)")
    switch_cost: float = option(0.0, "cost of each change between sent and withheld from one "
                                     "segment to the next, per segment (0 = off): favours "
                                     "withholding whole runs (words) over alternating")

    def __post_init__(self) -> None:
        check_number(self.gamma, "gamma", low=0)
        check_number(self.lambda_init, "lambda_init", low=0)
        check_number(self.lambda_lr, "lambda_lr", low=0)
        check_number(self.lambda_max, "lambda_max", low=self.lambda_init)
        check_number(self.speaker_adversary, "speaker_adversary", low=0)
        check_number(self.asr_adversary, "asr_adversary", low=0)
        check_number(self.switch_cost, "switch_cost", low=0)

    def to_dict(self) -> dict:
        return asdict(self)
