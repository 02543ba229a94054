"""`random`: each gate segment (x band group) sent with probability `BaselineConfig.random_open`,
at the mask's gate layout; no computation on the device beyond a random draw."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from speechmask.models.gates import GateConfig

from . import System
from .common import gated, no_cost
from ..data import Sent, SuiteData

if TYPE_CHECKING:
    from ..suite import Suite


def random_mask(data: SuiteData, gate: GateConfig, open_rate: float, seed: int) -> Sent:
    """Each segment (x band group) open with probability `open_rate`, seeded per utterance."""
    seg_frames = gate.frames_per_segment(data.frontend)
    gates = []
    for row, f in zip(data.rows, data.fs.features):
        rng = np.random.default_rng([seed, zlib.crc32(row["id"].encode())])
        gates.append((rng.random((f.shape[0] // seg_frames, gate.band_groups)) < open_rate)
                     .astype(np.float32))
    return gated(data, gates, gate)


class RandomMask(System):
    expected_cost = 4.0

    def build(self, suite: Suite) -> Sent:
        return random_mask(suite.data, suite.gate, suite.cfg.baselines.random_open,
                           suite.cfg.seed)

    def cost(self, suite: Suite) -> dict[str, int]:
        return no_cost()
