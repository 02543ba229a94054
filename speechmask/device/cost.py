"""The on-device cost of a mask, one definition for every report that quotes it (checkpoints,
the attack suite's rows, the export report): the device's call counted with forward hooks
(`speechmask.models.cost.count_cost`) plus the histories it keeps between calls."""

from __future__ import annotations

import torch

from ..models.cost import count_cost
from ..models.mask import MaskGenerator
from .contract import calls_per_second, history_values, input_shapes
from .reference import StreamingCall
from .send import send_cost


def mask_cost(mask: MaskGenerator) -> dict:
    """`params`; `macs_per_second` of audio (one call's MACs x calls per second);
    `weight_bytes` (int8 matrices, int32 biases); `activation_bytes`: the peak int8
    activations of one call plus the histories kept between calls (`history_bytes`) and the
    send steps' state (`send_state_bytes`); `send_table_bytes`: the send steps' constants;
    `memory_bytes` = weights + activations + send tables;
    `send_ops_per_second`: the send steps' integer operations (`device.send.send_cost`, not
    MACs); `calls_per_second`."""
    cfg = mask.cfg
    rate = calls_per_second(cfg)
    # on the mask's own device: a checkpoint of a run on CUDA counts its mask where it is
    device = next(mask.parameters()).device
    example = tuple(torch.zeros(1, *s, device=device) for s in input_shapes(cfg))
    c = count_cost(StreamingCall(mask), example, 1.0 / rate)
    history = history_values(cfg)
    sent = send_cost(cfg)
    activation = c["activation_bytes"] + history + sent["state_bytes"]
    return {"params": c["params"], "macs_per_second": c["macs_per_second"],
            "weight_bytes": c["weight_bytes"], "activation_bytes": activation,
            "history_bytes": history, "send_state_bytes": sent["state_bytes"],
            "send_table_bytes": sent["table_bytes"],
            "send_ops_per_second": sent["ops_per_second"],
            "memory_bytes": c["weight_bytes"] + activation + sent["table_bytes"],
            "calls_per_second": rate}
