"""`speechmask flash`: write a firmware image through the STM32 system bootloader.

The plan, from what the flash already holds: every 256-byte block the image touches is read back
first; blocks that already hold the image are skipped (so an interrupted flash resumes where it
stopped), erased blocks are written, and only the sectors holding a block that is neither are
erased (then all their image blocks are written). `--erase mass` erases the whole flash instead
and writes every block."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from speechmask.options import option

from .an3155 import MAX_FRAME, Bootloader, Port
from .bootloader_emu import known_chip
from .chips import Chip
from .image import Image, SerialToolError

ERASE_MODES = ("sectors", "mass")
RESET_LINES = ("none", "dtr", "rts")


def parse_address(text: str) -> int:
    import argparse

    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (e.g. 0x08000000)") from None


@dataclass(frozen=True)
class FlashConfig:
    baud: int = option(115200, "baud rate (the bootloader detects it from the first 0x7F)")
    address: int | None = option(None, "where a .bin goes (default: the start of flash, "
                                       "0x08000000); .hex and .elf carry their addresses",
                                 parse=parse_address, metavar="ADDR")
    erase: str = option("sectors", "erase only the sectors the image needs and that do not "
                                   "already hold it (sectors), or the whole flash (mass)",
                        choices=ERASE_MODES)
    verify: bool = option(False, "read every written block back and compare")
    go: bool = option(False, "start the firmware (Go to the image's vector table) afterwards")
    reset: str = option("none", "pulse this modem line before connecting, to reset a board "
                                "whose reset is wired to it", choices=RESET_LINES)
    retries: int = option(3, "retries of a command after a NACK or a timeout (resynchronising "
                             "first)")
    timeout_s: float = option(1.0, "seconds to wait for each reply (an erase waits longer)",
                              flag="--timeout")

    def __post_init__(self) -> None:
        from speechmask.options import check_int, check_number

        check_int(self.baud, "baud")
        check_int(self.retries, "retries", low=0)
        check_number(self.timeout_s, "timeout_s", low=0, strict_low=True)


@dataclass
class FlashReport:
    port: str
    image: str
    chip: str
    product_id: int
    bootloader_version: int
    blocks: int
    skipped: int
    written: int
    sectors_erased: list[int]
    verified: bool
    seconds: float

    def describe(self) -> str:
        erased = (f"erased sector(s) {_ranges(self.sectors_erased)}" if self.sectors_erased
                  else "erased nothing")
        return (f"{self.image} -> {self.port}: {self.chip} (0x{self.product_id:03X}, bootloader "
                f"v{self.bootloader_version >> 4}.{self.bootloader_version & 15}); "
                f"{self.blocks} blocks of {MAX_FRAME} B: {self.written} written, {self.skipped} "
                f"already there; {erased}; {'verified' if self.verified else 'not verified'}; "
                f"{self.seconds:.1f} s")

    def to_dict(self) -> dict:
        return asdict(self)


def _ranges(values: list[int]) -> str:
    out, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ",".join(out)


def flash_image(port: Port, image: Image, cfg: FlashConfig, *, port_name: str = "port",
                progress: Callable[[str, int], Callable[[], None]] | None = None,
                chip: Chip | None = None) -> FlashReport:
    """Flash `image` over an open `port`. `progress(label, total)` returns a callback called
    once per block."""
    started = time.monotonic()
    boot = Bootloader(port, retries=cfg.retries)
    boot.connect()
    info = boot.info()
    chip = chip or known_chip(info.product_id)
    if image.start < chip.sector_address(0) or image.end > chip.flash_end:
        raise SerialToolError(f"{image.path}: 0x{image.start:08X}..0x{image.end:08X} lies "
                              f"outside {chip.name}'s flash (0x{chip.sector_address(0):08X}.."
                              f"0x{chip.flash_end:08X})")
    tick = progress or (lambda label, total: (lambda: None))
    blocks = image.blocks(MAX_FRAME)
    blank = b"\xff" * MAX_FRAME

    if cfg.erase == "mass":
        boot.erase(None)
        erased, todo = list(range(chip.sectors)), [a for a, b in blocks.items() if b != blank]
        skipped = len(blocks) - len(todo)
    else:
        state = {}
        step = tick("checking", len(blocks))
        for address, data in blocks.items():
            held = boot.read_memory(address, MAX_FRAME)
            state[address] = "same" if held == data else "blank" if held == blank else "dirty"
            step()
        erased = sorted({chip.sector_of(a) for a, s in state.items() if s == "dirty"})
        if erased:
            boot.erase(erased)
        todo = [a for a, s in state.items()  # erased blocks, and what an erase wiped
                if blocks[a] != blank and (s != "same" or chip.sector_of(a) in erased)]
        skipped = len(blocks) - len(todo)

    step = tick("writing", len(todo))
    for address in todo:
        boot.write_memory(address, blocks[address])
        step()
    if cfg.verify:
        step = tick("verifying", len(blocks))
        for address, data in blocks.items():
            held = boot.read_memory(address, MAX_FRAME)
            if held != data:
                bad = next(i for i in range(MAX_FRAME) if held[i] != data[i])
                raise SerialToolError(f"{image.path}: verification failed at "
                                      f"0x{address + bad:08X} (flash 0x{held[bad]:02X}, image "
                                      f"0x{data[bad]:02X})")
            step()
    if cfg.go:
        boot.go(image.start)
    return FlashReport(port_name, str(image.path), chip.name, chip.product_id, info.version,
                       len(blocks), skipped, len(todo), erased, cfg.verify,
                       time.monotonic() - started)
