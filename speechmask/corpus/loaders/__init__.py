"""Registry of real-corpus loaders: format name -> scan(root) -> ScanResult."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .common import ScanResult
from .fsc import scan as scan_fsc
from .librispeech import scan as scan_librispeech
from .slurp import scan as scan_slurp
from .speechcommands import scan as scan_speechcommands
from .vctk import scan as scan_vctk
from .voxceleb import scan as scan_voxceleb

LOADERS: dict[str, Callable[[Path], ScanResult]] = {
    "fsc": scan_fsc,
    "slurp": scan_slurp,
    "librispeech": scan_librispeech,
    "voxceleb": scan_voxceleb,
    "vctk": scan_vctk,
    "speechcommands": scan_speechcommands,
}
