"""`all_offload`: the device sends the clean features and audio, and computes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import System
from .common import no_cost
from ..data import Sent, SuiteData

if TYPE_CHECKING:
    from ..suite import Suite


def all_offload(data: SuiteData) -> Sent:
    return Sent(list(data.fs.features), audio=data.wave, open_fraction=1.0)


class AllOffload(System):
    sends_clean = True
    expected_cost = 1.0

    def build(self, suite: Suite) -> Sent:
        return all_offload(suite.data)

    def cost(self, suite: Suite) -> dict[str, int]:
        return no_cost()
