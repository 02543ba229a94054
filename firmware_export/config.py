"""`ExportConfig`: what `speechmask export` is asked for, torch-free so that the CLI reads its
defaults from it at once."""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass

from speechmask.options import check_int, option

_UNITS = {"KiB": 1024, "KB": 1000, "k": 1024, "MiB": 1 << 20, "MB": 10 ** 6, "B": 1, None: 1}


def size_bytes(text: str) -> int:
    """`128KiB`, `48KB`, `131072` -> bytes (argparse type)."""
    m = re.fullmatch(r"\s*(\d+)\s*(KiB|KB|k|MiB|MB|B)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 128KiB)")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class ExportConfig:
    ram_budget: int = option(128 * 1024, "refuse a TFLite Micro arena larger than this "
                                          "(bytes, or with a unit: 128KiB)", parse=size_bytes)
    calib_utterances: int = option(40, "'train' utterances of --calib that calibrate the int8 "
                                       "ranges")
    test_utterances: int = option(20, "'test' utterances of --calib that check parity")

    def __post_init__(self) -> None:
        check_int(self.ram_budget, "ram_budget")
        check_int(self.calib_utterances, "calib_utterances")
        check_int(self.test_utterances, "test_utterances")

    def to_dict(self) -> dict:
        return asdict(self)
