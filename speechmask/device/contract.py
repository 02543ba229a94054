"""What the device computes per call, named once: inputs, outputs, shapes, per-layer histories,
the contract's version and the export id that every artefact crossing a boundary carries.

One call per completed segment (`MaskConfig.frames_per_segment` frames):
- inputs, in `input_names` order: `frames` `(frames_per_segment, n_mels)`, the segment's new raw
  log-mel frames; one `history<i>` `(frames_i, channels_i)` per layer that looks back (that
  layer's input on the frames before the segment, as earlier calls returned it; zero at the
  utterance start); `state` `(state_width,)`, the gates already sent, newest first;
- outputs, in `output_names` order: `tanh_logit` `(band_groups,)` = log_alpha / logit_bound in
  [-1, 1] (a gate opens where log_alpha > `GateConfig.threshold_logit`), and one `new<i>`
  `(frames_per_segment, channels_i)` per history, which the device shifts into `history<i>`.

`CONTRACT_VERSION` changes whenever any of this changes meaning; `export_id` identifies the
weights and configs one artefact was made from. A receiver refuses a mismatch of either by name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..errors import SpeechmaskError
from ..models.mask import MaskConfig

CONTRACT_VERSION = 1
EXPORT_ID_HEX = 16  # 64 bits: names one set of weights among a user's exports


class ContractError(SpeechmaskError):
    """An artefact that does not fit the device contract: another contract version, another
    export id, or inputs and outputs of other names or shapes."""


@dataclass(frozen=True)
class History:
    """One layer's look-back: its input on the `frames` frames before the current segment."""

    name: str
    layer: int  # tiny: 0 (the normalised input); small: the dilated block it feeds
    frames: int
    channels: int


def histories(cfg: MaskConfig) -> list[History]:
    if cfg.arch == "tiny":
        n = cfg.context_segments * cfg.frames_per_segment
        return [History("history0", 0, n, cfg.frontend.n_mels)] if n else []
    out = []
    for i in range(cfg.layers):
        n = (cfg.kernel - 1) * 2 ** i
        if n:
            out.append(History(f"history{len(out)}", i, n, cfg.hidden))
    return out


def history_values(cfg: MaskConfig) -> int:
    """Values (int8 bytes on the device) the histories hold between calls."""
    return sum(h.frames * h.channels for h in histories(cfg))


def input_names(cfg: MaskConfig) -> list[str]:
    return ["frames", *(h.name for h in histories(cfg)), "state"]


def output_names(cfg: MaskConfig) -> list[str]:
    return ["tanh_logit", *(h.name.replace("history", "new") for h in histories(cfg))]


def state_width(cfg: MaskConfig) -> int:
    """Width of the state input: the fed-back gates, or one unused zero without feedback."""
    return max(1, cfg.feedback * cfg.gate.band_groups)


def input_shapes(cfg: MaskConfig) -> list[tuple[int, ...]]:
    """Shapes of the inputs (in `input_names` order), without the batch axis."""
    return [(cfg.frames_per_segment, cfg.frontend.n_mels),
            *((h.frames, h.channels) for h in histories(cfg)), (state_width(cfg),)]


def calls_per_second(cfg: MaskConfig) -> float:
    return cfg.frontend.frames_per_second / cfg.frames_per_segment


def export_id(cfg: MaskConfig, state_dict: dict) -> str:
    """Hex digest of the configs and every weight (names, dtypes, shapes, bytes) of a mask:
    two artefacts carry the same id exactly when they come from the same trained mask."""
    h = hashlib.sha256()
    h.update(json.dumps({"contract_version": CONTRACT_VERSION, "config": cfg.to_dict()},
                        sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()[:EXPORT_ID_HEX]


def stamp(mask) -> dict:
    """What every artefact made from `mask` (a `MaskGenerator`) carries."""
    return {"contract_version": CONTRACT_VERSION, "export_id": export_id(mask.cfg,
                                                                         mask.state_dict())}


def check_stamp(found: dict | None, want: dict, source: str) -> None:
    """ContractError naming `source` unless `found` carries `want`'s version and export id."""
    if not found:
        raise ContractError(f"{source}: carries no device contract stamp (export it again with "
                            "this speechmask)")
    if found.get("contract_version") != want["contract_version"]:
        raise ContractError(f"{source}: device contract version {found.get('contract_version')}, "
                            f"this speechmask speaks version {want['contract_version']}")
    if found.get("export_id") != want["export_id"]:
        raise ContractError(f"{source}: export id {found.get('export_id')} is not that of the "
                            f"given mask ({want['export_id']}): it was exported from another "
                            "mask")
