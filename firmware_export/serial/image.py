"""Firmware images to flash: .bin (raw, at --address), Intel .hex and .elf (addresses inside).

An image is a list of (address, bytes) segments; `blocks` cuts it into the aligned blocks the
bootloader writes. .hex is read with intelhex and .elf with pyelftools (the loadable segments at
their load addresses, as objcopy -O binary would place them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speechmask.errors import SpeechmaskError

from .chips import FLASH_BASE


class SerialToolError(SpeechmaskError):
    """A serial tool's input or peer that cannot be used: image, port, board, frame."""


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


@dataclass(frozen=True)
class Image:
    path: Path
    segments: tuple[Segment, ...]

    @property
    def start(self) -> int:
        return min(s.address for s in self.segments)

    @property
    def end(self) -> int:
        return max(s.end for s in self.segments)

    @property
    def size(self) -> int:
        return sum(len(s.data) for s in self.segments)

    def blocks(self, block: int) -> dict[int, bytes]:
        """{aligned address: `block` bytes}: every block the image touches, 0xFF (erased flash)
        where the image has no byte."""
        out: dict[int, bytearray] = {}
        for seg in self.segments:
            pos = seg.address
            while pos < seg.end:
                base = pos - pos % block
                chunk = out.setdefault(base, bytearray(b"\xff" * block))
                n = min(seg.end, base + block) - pos
                chunk[pos - base:pos - base + n] = seg.data[pos - seg.address:pos - seg.address + n]
                pos += n
        return {a: bytes(b) for a, b in sorted(out.items())}


def load_image(path: Path, address: int | None = None) -> Image:
    """Read a .bin (placed at `address`, default the start of flash), .hex or .elf. One
    `SerialToolError` line naming the file for anything unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise SerialToolError(f"{path}: no such firmware file")
    suffix = path.suffix.lower()
    if suffix in (".hex", ".ihex") or suffix == ".elf":
        if address is not None:
            raise SerialToolError(f"{path}: --address applies to .bin images only "
                                  f"({suffix} files carry their own addresses)")
        segments = _hex(path) if suffix != ".elf" else _elf(path)
    elif suffix == ".bin":
        segments = [Segment(FLASH_BASE if address is None else address, path.read_bytes())]
    else:
        raise SerialToolError(f"{path}: unknown firmware format {suffix or '(no suffix)'!r}; "
                              "give a .bin, .hex or .elf")
    segments = [s for s in segments if s.data]
    if not segments:
        raise SerialToolError(f"{path}: the image holds no bytes to flash")
    segments.sort(key=lambda s: s.address)
    for a, b in zip(segments, segments[1:]):
        if b.address < a.end:
            raise SerialToolError(f"{path}: segments overlap at 0x{b.address:08X}")
    return Image(path, tuple(segments))


def _hex(path: Path) -> list[Segment]:
    from intelhex import IntelHex, IntelHexError

    try:
        ih = IntelHex(str(path))
    except (IntelHexError, ValueError, UnicodeDecodeError) as exc:
        raise SerialToolError(f"{path}: not a valid Intel hex file ({exc})") from None
    return [Segment(start, ih.tobinstr(start=start, end=end - 1))
            for start, end in ih.segments()]


def _elf(path: Path) -> list[Segment]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            return [Segment(seg["p_paddr"], seg.data()[:seg["p_filesz"]])
                    for seg in elf.iter_segments()
                    if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
    except (ELFError, ValueError, OSError, EOFError) as exc:
        raise SerialToolError(f"{path}: not a valid ELF file ({exc})") from None
