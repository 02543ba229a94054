"""What the device does to the features it sends (`models.config.SendConfig`), after the gates have
chosen which to send: the per-band normalisation (`bandnorm`; with `SendConfig.norm_scale`, of
each band's deviations as well), then random frequency warping (`warp`), then with
`SendConfig.level` the per-frame level removal (`level`). The gates are decided
on the raw features, as before; the steps change the values of what is sent, not which values
are sent, so a mask's gates do not depend on them and the cloud model that reads what is sent is
the one fine-tuned on it (`train finetune`).

Implementations: `send_int` (int16 features, the firmware's arithmetic, with `StreamingSend` for
any chunking), `send_float` (float log-mel, for fine-tuning and the attack suite; within two LSB
of the integer path, or the scale's rounding with `norm_scale`: `bandnorm`), and `calibrate` (the
normalisation's targets: the training features' band means and, with the scale, deviations).

The warp's factor is drawn once per utterance. The device draws it from its hardware random
number generator; the reference stands in with `utterance_level`, a hash of the utterance's
int16 features, so that every run of the reference (training, the suite, `speechmask mask`)
sends the same thing for the same utterance while the levels are spread uniformly and
independently of the speaker. (The one difference: the device would warp a repeated recording
afresh each time; the reference warps it alike.)

The masked-audio path has no counterpart: neither the normalisation nor the warp has a
waveform the device computes cheaply (it would take per-band gains and a resampled spectrum in
the STFT, an inverse FFT and overlap-add, doubling the front-end's cost; the level removal alone
would be a gain per frame), and audio sent untouched would carry the very cues the steps remove.
With a step on, the device sends features only (`masking.mask_utterance` returns no audio, the
suite's audio attackers do not apply).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from ..features import FrontendConfig
from ..models.config import MaskConfig, SendConfig
from . import bandnorm, level as frame_level, warp


def bandnorm_config(send: SendConfig) -> bandnorm.BandNormConfig:
    """The per-band normalisation `send` asks for (mode none when it is off)."""
    if not send.norm:
        return bandnorm.BandNormConfig()
    if not send.norm_target:
        raise ConfigError("the send normalisation has no target: train the mask (which "
                          "calibrates it) or give one", field="norm_target")
    if send.norm_scale:
        if not send.norm_scale_target:
            raise ConfigError("the send normalisation's scale has no target: train the mask "
                              "(which calibrates it) or give one", field="norm_scale_target")
        return bandnorm.BandNormConfig("scale", send.norm_frames, send.norm_frac_bits,
                                       send.norm_target, send.norm_scale_target,
                                       send.norm_max_gain)
    return bandnorm.BandNormConfig("mean", send.norm_frames, send.norm_frac_bits,
                                   send.norm_target)


def level_target(send: SendConfig) -> int:
    """The level removal's target (int16 units); ConfigError while it is uncalibrated."""
    if send.level_target is None:
        raise ConfigError("the send level removal has no target: train the mask (which "
                          "calibrates it) or give one", field="level_target")
    return send.level_target


def warp_config(send: SendConfig) -> warp.WarpConfig:
    """The frequency warping `send` asks for (mode none when it is off)."""
    if not send.warp:
        return warp.WarpConfig()
    return warp.WarpConfig("random", send.warp_max, send.warp_levels, send.warp_pivot)


def utterance_level(features_q: np.ndarray, cfg: MaskConfig) -> int:
    """The reference's warp level for one utterance (int16 features): a hash of its features,
    uniform over -warp_levels..warp_levels; 0 when the warp is off."""
    if not cfg.send.warp:
        return 0
    digest = hashlib.blake2b(np.ascontiguousarray(features_q, dtype=np.int16).tobytes(),
                             digest_size=8).digest()
    n = 2 * cfg.send.warp_levels + 1
    return int.from_bytes(digest, "little") % n - cfg.send.warp_levels


def quantize(features: np.ndarray, fe: FrontendConfig) -> np.ndarray:
    """Float log-mel -> the integer front-end's int16 Q`log_frac_bits` units."""
    q = np.rint(np.asarray(features, dtype=np.float64) * (1 << fe.log_frac_bits))
    return np.clip(q, -32768, 32767).astype(np.int16)


def calibrate(cfg: MaskConfig, features: list[np.ndarray]) -> MaskConfig:
    """`cfg` with its send target calibrated on float training features (unchanged when the
    step is off or already calibrated)."""
    if cfg.send.calibrated:
        return cfg
    fe, send = cfg.frontend, cfg.send
    q = [quantize(f, fe) for f in features]
    if not send.norm_calibrated:
        norm = bandnorm.calibrate(q, send.norm_frames, send.norm_frac_bits,
                                  "scale" if send.norm_scale else "mean", send.norm_max_gain)
        send = replace(send, norm_target=norm.target, norm_scale_target=norm.scale)
    if send.level and send.level_target is None:
        send = replace(send, level_target=frame_level.calibrate(q))
    return replace(cfg, send=send)


def send_float(features, cfg: MaskConfig, lengths=None, levels=None):
    """Float log-mel -> what is sent of it, before gating; the input itself when every step is
    off. `features`: one utterance `(frames, n_mels)` (numpy or torch) or a padded batch
    `(B, frames, n_mels)` (torch) with its `lengths`. `levels` (one per utterance) default to
    `utterance_level` of each utterance's frames."""
    send = cfg.send
    if not send.enabled:
        return features
    out = features
    if send.norm:
        out = bandnorm.normalize_float(out, bandnorm_config(send), cfg.frontend.log_frac_bits)
    if send.warp:
        out = _warp_float(features, out, cfg, lengths, levels)
    if send.level:
        out = frame_level.remove_level_float(
            out, level_target(send) / (1 << cfg.frontend.log_frac_bits))
    return out


def _warp_float(raw, x, cfg: MaskConfig, lengths, levels):
    import torch

    single = x.ndim == 2
    if levels is None:
        n = [raw.shape[0]] if single else [raw.shape[1] if lengths is None else int(lengths[b])
                                          for b in range(raw.shape[0])]
        rows = [raw] if single else [raw[b, : n[b]] for b in range(raw.shape[0])]
        levels = [utterance_level(quantize(np.asarray(r.detach().cpu().numpy()
                                                      if isinstance(r, torch.Tensor) else r),
                                           cfg.frontend), cfg) for r in rows]
    is_numpy = isinstance(x, np.ndarray)
    t = torch.from_numpy(x) if is_numpy else x
    y = warp.warp_float(t[None] if single else t, levels, warp_config(cfg.send), cfg.frontend)
    y = y[0] if single else y
    return y.numpy().astype(x.dtype) if is_numpy else y


def send_int(features_q: np.ndarray, cfg: MaskConfig, level: int | None = None) -> np.ndarray:
    """int16 `(frames, n_mels)` -> int16: the firmware's arithmetic for one utterance, warped by
    `level` (default: `utterance_level` of the utterance)."""
    level = utterance_level(features_q, cfg) if level is None else level
    return StreamingSend(cfg, level).push(features_q)


class StreamingSend:
    """`send_int` with carried state, frame chunk by chunk, as the firmware runs it. `level`: the
    warp level of this utterance (the device draws it at the utterance start); `reset(level)` at
    the start of each utterance (stream)."""

    def __init__(self, cfg: MaskConfig, level: int = 0):
        self.cfg = cfg
        self.warp = warp_config(cfg.send)
        self.norm = bandnorm.StreamingBandNormInt(bandnorm_config(cfg.send), cfg.frontend.n_mels)
        self.level_target = level_target(cfg.send) if cfg.send.level else None
        self.reset(level)

    def reset(self, level: int = 0) -> None:
        if self.warp.enabled and not -self.warp.levels <= level <= self.warp.levels:
            raise ValueError(f"warp level {level} outside -{self.warp.levels}..{self.warp.levels}")
        self.level = level if self.warp.enabled else 0
        self.norm.reset()

    def push(self, frames_q: np.ndarray) -> np.ndarray:
        y = self.norm.push(frames_q)
        y = warp.warp_int(y, self.level, self.warp, self.cfg.frontend)
        # per frame, no state: its own streaming form
        if self.level_target is None:
            return y
        return frame_level.remove_level_int(y, self.level_target)


def steps_name(send: SendConfig) -> str:
    """The send steps named as benchmarks/bench_ablation.py's variants ("norm256+warp20";
    "gates" when every step is off)."""
    parts = ([f"norm{send.norm_frames}"] if send.norm else []) + \
        (["scale"] if send.norm_scale else []) + \
        ([f"warp{round(send.warp_max * 100)}"] if send.warp else []) + \
        (["level"] if send.level else [])
    return "+".join(parts) or "gates"


def send_cost(cfg: MaskConfig) -> dict:
    """Per second of audio: `ops_per_second` (the normalisation: a subtraction, a division and
    two additions per band and frame, and with its scale an absolute value, a subtraction, two
    divisions, a multiplication, a maximum and an addition more; the warp: a multiplication, two
    additions and a shift; the level removal: an addition, a subtraction and an addition per
    band, a division per frame), `state_bytes` (an int32 mean per band, and a deviation with the
    scale, a frame counter, the utterance's warp level) and `table_bytes` (constants in flash:
    the int16 target, the scale's int16 target and floor, the warp's uint8 indices and uint16
    weights per level and band; the level's target is an immediate in the code, no table)."""
    send, n = cfg.send, cfg.frontend.n_mels
    per_frame = (4 * n if send.norm else 0) + (7 * n if send.norm_scale else 0) + \
        (4 * n if send.warp else 0) + (3 * n + 1 if send.level else 0)
    state = (4 * n + 4 if send.norm else 0) + (4 * n if send.norm_scale else 0) + \
        (4 if send.warp else 0)
    tables = (2 * n if send.norm else 0) + (4 * n if send.norm_scale else 0) + \
        (3 * n * (2 * send.warp_levels + 1) if send.warp else 0)
    return {"ops_per_second": int(round(per_frame * cfg.frontend.frames_per_second)),
            "state_bytes": state, "table_bytes": tables}
