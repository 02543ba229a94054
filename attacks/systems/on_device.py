"""`on_device`: nothing leaves the device; the whole cloud model runs there on clean features."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import System
from .common import counted

if TYPE_CHECKING:
    from ..suite import Suite


class OnDevice(System):
    shared = frozenset()
    expected_cost = 0.0

    def build(self, suite: Suite) -> None:
        return None

    def cost(self, suite: Suite) -> dict[str, int]:
        return counted(suite.slu, suite)
