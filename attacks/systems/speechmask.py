"""`speechmask` and `speechmask_int8`: the trained mask's binary gates, as the device computes
them, from the float model and from the exported int8 model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from speechmask.device import mask_cost
from speechmask.masking import mask_batch
from speechmask.models.mask import MaskGenerator
from speechmask.train.data import pad_batch

from . import COST_KEYS, System
from .common import gated
from ..data import AttackError, Sent, SuiteData

if TYPE_CHECKING:
    from ..suite import Suite


def speechmask_mask(data: SuiteData, mask: MaskGenerator) -> Sent:
    """The trained mask's binary gates, as the device computes them."""
    gates = []
    with torch.no_grad():
        for s in range(0, len(data.rows), 64):
            feats = data.fs.features[s:s + 64]
            x, lengths = pad_batch(feats, data.floor)
            _, g, _ = mask_batch(mask.eval(), x, lengths)
            n = mask.cfg.frames_per_segment
            gates += [g[k, : f.shape[0] // n].numpy() for k, f in enumerate(feats)]
    return gated(data, gates, mask.cfg.gate, mask.cfg)


def speechmask_int8(data: SuiteData, mask: MaskGenerator, model: bytes,
                    progress: bool = False) -> Sent:
    """The exported int8 TFLite model's binary gates, as the device computes them: its own
    closed loop (int8 histories and gates fed back), on LiteRT's reference kernels (those TFLite
    Micro matches within 1 LSB; `speechmask export` checks it)."""
    from tqdm.auto import tqdm

    from speechmask.device.int8 import LiteRT, int8_gates

    litert = LiteRT(model, mask.cfg)  # refuses a model whose inputs do not fit this mask
    gates = [int8_gates(litert, f)[1] for f in tqdm(data.fs.features, desc="int8 gates",
                                                     disable=not progress, leave=False)]
    return gated(data, gates, mask.cfg.gate, mask.cfg)


def _mask(suite: Suite) -> MaskGenerator:
    if suite.mask is None:
        raise AttackError("the speechmask systems need --mask")
    return suite.mask


def _cost(suite: Suite) -> dict[str, int]:
    """`speechmask.device.mask_cost`, the one definition the export report uses too."""
    c = mask_cost(_mask(suite))
    return {k: c[k] for k in COST_KEYS}


class SpeechmaskMask(System):
    expected_cost = 3.0

    def build(self, suite: Suite) -> Sent:
        return speechmask_mask(suite.data, _mask(suite))

    def cost(self, suite: Suite) -> dict[str, int]:
        return _cost(suite)


class SpeechmaskInt8(System):
    # read by the attackers, and by the cloud model, trained on the float mask's output, so that
    # its row differs from speechmask's only by what the int8 gates change
    trains_as = "speechmask"
    expected_cost = 3.0

    def build(self, suite: Suite) -> Sent:
        if suite.int8_model is None:
            raise AttackError("the speechmask_int8 system needs --mask and --int8")
        return speechmask_int8(suite.data, _mask(suite), suite.int8_model, suite.progress)

    def cost(self, suite: Suite) -> dict[str, int]:
        return _cost(suite)  # the same network as the float mask's, in int8
