"""The models' configs, torch-free so that the CLI reads its defaults from them at once: where
gates sit and how they are sampled (`GateConfig`), the mask generator's architecture
(`MaskConfig`), the cloud model's (`SLUConfig`). Checkpoints store them; `from_dict` rebuilds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from ..features import FrontendConfig
from ..options import check_choice, check_int, check_number, option


@dataclass(frozen=True)
class GateConfig:
    """Where gates sit and how they are sampled."""

    segment_ms: float = option(40.0, "gate segment length in ms (a multiple of the 10 ms hop)")
    band_groups: int = option(1, "gates per segment over groups of mel bands (1 = whole-segment "
                                 "gates, which can mask audio)")
    beta: float = option(2.0 / 3.0, "hard-concrete temperature", flag="--temperature")
    stretch_low: float = -0.1  # l
    stretch_high: float = 1.1  # r
    threshold: float = 0.5  # on the deterministic gate

    def __post_init__(self) -> None:
        check_number(self.segment_ms, "segment_ms", low=0, strict_low=True)
        check_int(self.band_groups, "band_groups")
        check_number(self.beta, "beta", low=0, strict_low=True)
        check_number(self.stretch_low, "stretch_low", high=-1e-9)
        check_number(self.stretch_high, "stretch_high", low=1, strict_low=True)
        check_number(self.threshold, "threshold", low=0, high=1, strict_low=True)
        if self.threshold == 1:
            raise ConfigError("threshold must be below 1", field="threshold")

    def frames_per_segment(self, fe: FrontendConfig) -> int:
        q = self.segment_ms / fe.hop_ms
        if abs(q - round(q)) > 1e-9 or round(q) < 1:
            raise ConfigError(f"segment_ms must be a whole number of {fe.hop_ms:g} ms hops "
                              f"(got {self.segment_ms:g})", field="segment_ms")
        return int(round(q))

    def samples_per_segment(self, fe: FrontendConfig) -> int:
        return self.frames_per_segment(fe) * fe.hop_length

    def band_edges(self, n_mels: int) -> list[tuple[int, int]]:
        """Contiguous, near-equal groups of mel bands: [(start, end), ...]."""
        if self.band_groups > n_mels:
            raise ConfigError(f"band_groups must be <= the {n_mels} mel bands (got "
                              f"{self.band_groups})", field="band_groups")
        step = n_mels / self.band_groups  # as numpy's linspace: i * step, the end exact
        cuts = [round(i * step) for i in range(self.band_groups)] + [n_mels]
        return list(zip(cuts[:-1], cuts[1:]))

    @property
    def threshold_logit(self) -> float:
        """log_alpha above which the gate is open at inference."""
        p = (self.threshold - self.stretch_low) / (self.stretch_high - self.stretch_low)
        return math.log(p / (1 - p))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SendConfig:
    """What the device does to the features it sends, after the gates have chosen which to send:
    the device-side privacy steps (`speechmask.device.send`), in this order:

    - the streaming per-band normalisation (`speechmask.device.bandnorm`): each band minus its
      running mean over `norm_frames` frames, plus `norm_target`, the training features' band
      means (calibrated by `train mask`, in the front-end's int16 units). It removes the speaker
      cues that sit in every frame (level, average spectrum, microphone band);
      With `norm_scale`, each band's deviation from its running mean is also divided by its
      running mean absolute deviation and multiplied by `norm_scale_target` (calibrated alike):
      how much each band varies, the speaker's spectral dynamics, is moved to a fixed target;
    - random frequency warping (`speechmask.device.warp`): the frequency axis of each utterance
      rescaled by a factor drawn for it, up to `1 + warp_max`, over `warp_levels` quantised
      factors on each side of 1. It hides the vocal-tract length, which the normalisation
      leaves;
    - with `level`, per-frame level removal (`speechmask.device.level`): each frame minus its
      mean over the bands, plus `level_target` (the training features' mean, calibrated alike):
      the loudness contour, which the normalisation keeps, does not leave the device.

    Gating whole segments touches none of these cues; benchmarks/bench_ablation.py measures each
    step on and off."""

    # defaults chosen by the rule of docs/design.md on a corpus of other voices, on the mean of
    # two seeds (benchmarks/results/bench_ablation_tuning.json)
    norm_frames: int = option(256, "running-mean length of the per-band normalisation of what "
                                   "is sent, in frames (0 = off, its scale with it)",
                              flag="--send-norm-frames")
    warp_max: float = option(0.2, "random per-utterance frequency warping of what is sent: the "
                                  "largest factor is 1 + this (0 = off)", flag="--send-warp")
    norm_scale: bool = option(False, "the per-band normalisation also moves each band's mean "
                                     "absolute deviation to the training features', not only "
                                     "its mean", flag="--send-norm-scale")
    level: bool = option(False, "each frame sent also loses its level (its mean over the "
                                "bands), so the utterance's loudness contour stays on the "
                                "device", flag="--send-level")
    norm_target: tuple[int, ...] = ()
    level_target: int | None = None
    norm_scale_target: tuple[int, ...] = ()
    norm_max_gain: int = 8
    norm_frac_bits: int = 8
    warp_levels: int = 8
    warp_pivot: float = 0.8

    def __post_init__(self) -> None:
        check_int(self.norm_frames, "norm_frames", low=0)
        if self.norm_frames > 1 << 15:
            raise ConfigError(f"norm_frames must be <= 32768 (got {self.norm_frames})",
                              field="norm_frames")
        check_int(self.norm_frac_bits, "norm_frac_bits")
        check_number(self.warp_max, "warp_max", low=0, high=1)
        check_int(self.warp_levels, "warp_levels")
        check_number(self.warp_pivot, "warp_pivot", low=0, high=1, strict_low=True)
        object.__setattr__(self, "norm_target", tuple(int(v) for v in self.norm_target))
        object.__setattr__(self, "norm_scale_target",
                           tuple(int(v) for v in self.norm_scale_target))
        if self.norm_scale and not self.norm:  # the scale is a part of the normalisation
            object.__setattr__(self, "norm_scale", False)
        check_int(self.norm_max_gain, "norm_max_gain")
        if self.level_target is not None:
            check_int(self.level_target, "level_target", low=-32768)
            if self.level_target > 32767:  # an int16 feature value
                raise ConfigError(f"level_target must be <= 32767 (got {self.level_target})",
                                  field="level_target")

    @property
    def norm(self) -> bool:
        return self.norm_frames > 0

    @property
    def warp(self) -> bool:
        return self.warp_max > 0

    @property
    def enabled(self) -> bool:
        return self.norm or self.warp or self.level

    @property
    def calibrated(self) -> bool:
        return self.norm_calibrated and (not self.level or self.level_target is not None)

    @property
    def norm_calibrated(self) -> bool:
        """The normalisation has the targets it needs (or is off)."""
        return not self.norm or (bool(self.norm_target)
                                 and (not self.norm_scale or bool(self.norm_scale_target)))

    def to_dict(self) -> dict:
        d = {**asdict(self), "norm_target": list(self.norm_target),
             "norm_scale_target": list(self.norm_scale_target)}
        if not self.norm_scale:  # as masks were saved before the scale existed: same export id
            for k in ("norm_scale", "norm_scale_target", "norm_max_gain"):
                del d[k]
        if not self.level:  # as masks were saved before the level step existed
            for k in ("level", "level_target"):
                del d[k]
        return d


# what a mask saved before the send steps existed sends: its gated features as they are (and
# one saved before the normalisation's scale or the level step existed: neither)
OFF = {"norm_frames": 0, "warp_max": 0.0, "norm_scale": False, "level": False}

ARCHS = ("tiny", "small")


@dataclass(frozen=True)
class MaskConfig:
    """Architecture of the mask generator, with the gate and front-end configs it was built for."""

    arch: str = option("small", "tiny: per-segment MLP over the segment and its context (like "
                                "SILENCE-S); small: causal dilated depthwise-separable convs",
                       choices=ARCHS)
    hidden: int = option(32, "hidden units / channels")
    layers: int = option(3, "small: dilated blocks (dilation 1, 2, 4, ...)")
    kernel: int = option(5, "small: depthwise kernel")
    context_segments: int = option(1, "tiny: segments of look-back")
    feedback: int = option(2, "previous gate decisions fed back into the gate logits (0 = none)")
    feedback_init: float = -3.0  # initial weight of the latest gate (older ones start at 0)
    init_logit: float = 1.0  # gates start open (P(open) 0.93, KL near 0); L0 closes them
    logit_bound: float = 4.0  # log_alpha = bound * tanh(raw / bound): no gate saturates beyond
                              # reach of the gradients, and int8 output has a known range
    gate: GateConfig = field(default_factory=GateConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    send: SendConfig = field(default_factory=SendConfig)

    def __post_init__(self) -> None:
        check_choice(self.arch, "arch", ARCHS)
        check_int(self.hidden, "hidden")
        check_int(self.layers, "layers", low=0)
        check_int(self.kernel, "kernel")
        check_int(self.context_segments, "context_segments", low=0)
        check_int(self.feedback, "feedback", low=0)
        check_number(self.logit_bound, "logit_bound", low=0, strict_low=True)
        check_number(self.feedback_init, "feedback_init")
        check_number(self.init_logit, "init_logit")
        if abs(self.feedback_init) >= self.logit_bound:
            raise ConfigError("|feedback_init| must be below logit_bound", field="feedback_init")
        self.gate.frames_per_segment(self.frontend)  # validates segment_ms against the hop
        self.gate.band_edges(self.frontend.n_mels)
        for name in ("norm_target", "norm_scale_target"):
            bands = getattr(self.send, name)
            if bands and len(bands) != self.frontend.n_mels:
                raise ConfigError(f"send.{name} has {len(bands)} bands, the front-end "
                                  f"{self.frontend.n_mels}", field=name)

    @property
    def frames_per_segment(self) -> int:
        return self.gate.frames_per_segment(self.frontend)

    @property
    def sends_audio(self) -> bool:
        """Whether the device can send masked audio: whole-segment gates and no send step (the
        steps have no waveform counterpart, `speechmask.device.send`)."""
        return self.gate.band_groups == 1 and not self.send.enabled

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.send.enabled:
            d["send"] = self.send.to_dict()
        else:  # as masks were saved before the send steps: the same export id, the same bytes
            del d["send"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MaskConfig":
        d = dict(d)
        d["gate"] = GateConfig(**d.get("gate", {}))
        d["frontend"] = FrontendConfig.from_dict(d.get("frontend", {}))
        # masks saved before the send steps existed send the gated features as they are
        d["send"] = SendConfig(**{**OFF, **d.get("send", {})})
        return cls(**d)


LEVEL_NORMS = ("mean", "max")


@dataclass(frozen=True)
class SLUConfig:
    intents: tuple[str, ...]
    channels: int = 128
    hidden: int = 128
    dropout: float = 0.2
    feature_scale: float = 4.0  # typical spread of log-mel values around the reference level
    level_norm: str = option("mean", "per-band reference level over the utterance's live frames",
                             choices=LEVEL_NORMS)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    def to_dict(self) -> dict:
        return {**asdict(self), "intents": list(self.intents)}

    @classmethod
    def from_dict(cls, d: dict) -> "SLUConfig":
        d = dict(d)
        d["intents"] = tuple(d["intents"])
        d["frontend"] = FrontendConfig.from_dict(d.get("frontend", {}))
        return cls(**d)
