"""An STM32H7 system bootloader (ST AN3155, USART) served on a link, with its flash in a file.

Faithful where clients can tell: the session starts with 0x7F (ACK), a command is its byte and
complement (NACK otherwise, then back to waiting for a command), Get / Get Version / Get ID
answer as the part does (product id 0x450 by default, which Debian's stm32flash 0.7 knows),
address and data frames carry XOR checksums, flash programs only erased bytes (NACK otherwise,
as the H7's flash refuses to program a non-erased flash word), Extended Erase takes 2-byte sector
numbers or 0xFFFF for a mass erase and sends the busy byte 0x76 before its ACK, Read Memory and
Write Memory move 1..256 bytes. The flash lives in `flash_image`, so what was flashed survives a
restart."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from speechmask.atomic import atomic_output

from . import an3155 as bl
from .chips import CHIPS, FLASH_BASE, Chip
from .image import SerialToolError

COMMANDS = (bl.GET, bl.GET_VERSION, bl.GET_ID, bl.READ_MEMORY, bl.GO, bl.WRITE_MEMORY,
            bl.EXTENDED_ERASE)
RAM_BASE, RAM_BYTES = 0x2000_0000, 128 * 1024  # DTCM
FLASH_SIZE_REGISTER = 0x1FF1_E880  # 16 bits: flash size in KiB (RM0433)


class FlashFile:
    """The part's flash as a file of `chip.flash_bytes` bytes, erased (0xFF) when created."""

    def __init__(self, path: Path, chip: Chip):
        self.path, self.chip = Path(path), chip
        if not self.path.exists():
            with atomic_output(self.path) as tmp, open(tmp, "wb") as fh:
                fh.write(b"\xff" * chip.flash_bytes)
        elif self.path.stat().st_size != chip.flash_bytes:
            raise SerialToolError(f"{self.path}: {self.path.stat().st_size} bytes, not the "
                                  f"{chip.flash_bytes} of {chip.name}'s flash; give another "
                                  "--flash-image or delete this one")
        self._fd = os.open(self.path, os.O_RDWR)

    def read(self, address: int, n: int) -> bytes:
        return os.pread(self._fd, n, address - FLASH_BASE)

    def program(self, address: int, data: bytes) -> bool:
        """False (nothing written) where any target byte is not erased."""
        if self.read(address, len(data)) != b"\xff" * len(data):
            return False
        os.pwrite(self._fd, data, address - FLASH_BASE)
        return True

    def erase_sector(self, sector: int) -> None:
        os.pwrite(self._fd, b"\xff" * self.chip.sector_bytes,
                  self.chip.sector_address(sector) - FLASH_BASE)

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


@dataclass
class BootloaderEmulator:
    """`serve(link)` answers one bootloader session after another until the link closes; Go
    hands over to `on_go(address)` (the application), after which the part is in the
    bootloader again (a reset with BOOT0 high)."""

    flash: FlashFile
    on_go: Callable[[int], None] | None = None
    log: Callable[[str], None] = lambda line: None
    ram: bytearray = field(default_factory=lambda: bytearray(b"\0" * RAM_BYTES))

    @property
    def chip(self) -> Chip:
        return self.flash.chip

    def serve(self, link) -> None:
        while True:
            while link.read1() != bl.SYNC:  # autobaud: anything before 0x7F is noise
                pass
            link.write(bytes([bl.ACK]))
            self.log("session started")
            go = self._session(link)
            self.log(f"Go 0x{go:08X}")
            if self.on_go is not None:
                self.on_go(go)

    def _session(self, link) -> int:
        while True:
            cmd, comp = link.read1(), link.read1()
            if comp != cmd ^ 0xFF or cmd not in COMMANDS:
                link.write(bytes([bl.NACK]))
                continue
            link.write(bytes([bl.ACK]))
            if cmd == bl.GET:
                link.write(bytes([len(COMMANDS), self.chip.bootloader_version, *COMMANDS,
                                  bl.ACK]))
            elif cmd == bl.GET_VERSION:
                link.write(bytes([self.chip.bootloader_version, 0, 0, bl.ACK]))
            elif cmd == bl.GET_ID:
                link.write(bytes([1]) + self.chip.product_id.to_bytes(2, "big") + bytes([bl.ACK]))
            elif cmd == bl.READ_MEMORY:
                self._read_memory(link)
            elif cmd == bl.WRITE_MEMORY:
                self._write_memory(link)
            elif cmd == bl.EXTENDED_ERASE:
                self._erase(link)
            elif cmd == bl.GO:
                address = self._address(link)
                if address is None:
                    continue
                if self._region(address, 4) not in ("flash", "ram"):
                    link.write(bytes([bl.NACK]))  # the part refuses a jump outside memory
                    continue
                link.write(bytes([bl.ACK]))
                return address

    def _address(self, link) -> int | None:
        frame = link.read(5)
        if bl.xor(frame[:4]) != frame[4]:
            link.write(bytes([bl.NACK]))
            return None
        return int.from_bytes(frame[:4], "big")

    def _region(self, address: int, n: int) -> str | None:
        if FLASH_BASE <= address and address + n <= self.chip.flash_end:
            return "flash"
        if RAM_BASE <= address and address + n <= RAM_BASE + RAM_BYTES:
            return "ram"
        if FLASH_SIZE_REGISTER <= address and address + n <= FLASH_SIZE_REGISTER + 2:
            return "flash size"
        return None

    def _read_memory(self, link) -> None:
        address = self._address(link)
        if address is None:
            return
        link.write(bytes([bl.ACK]))
        n, comp = link.read1(), link.read1()
        if comp != n ^ 0xFF or self._region(address, n + 1) is None:
            link.write(bytes([bl.NACK]))
            return
        link.write(bytes([bl.ACK]) + self._memory(address, n + 1))

    def _memory(self, address: int, n: int) -> bytes:
        region = self._region(address, n)
        if region == "flash":
            return self.flash.read(address, n)
        if region == "ram":
            return bytes(self.ram[address - RAM_BASE:address - RAM_BASE + n])
        size = (self.chip.flash_bytes // 1024).to_bytes(2, "little")
        return size[address - FLASH_SIZE_REGISTER:address - FLASH_SIZE_REGISTER + n]

    def _write_memory(self, link) -> None:
        address = self._address(link)
        if address is None:
            return
        link.write(bytes([bl.ACK]))
        n = link.read1() + 1
        data = link.read(n)
        checksum = link.read1()
        region = self._region(address, n)
        if bl.xor(data, n - 1) != checksum or region not in ("flash", "ram") or address % 4:
            link.write(bytes([bl.NACK]))
            return
        if region == "ram":
            self.ram[address - RAM_BASE:address - RAM_BASE + n] = data
        elif not self.flash.program(address, data):
            self.log(f"refused to program non-erased flash at 0x{address:08X}")
            link.write(bytes([bl.NACK]))
            return
        link.write(bytes([bl.ACK]))

    def _erase(self, link) -> None:
        head = link.read(2)
        count = int.from_bytes(head, "big")
        if count >= 0xFFF0:  # special erases: 0xFFFF mass, 0xFFFE bank 1, 0xFFFD bank 2
            checksum = link.read1()
            if bl.xor(head) != checksum or count not in (0xFFFF, 0xFFFE, 0xFFFD):
                link.write(bytes([bl.NACK]))
                return
            half = self.chip.sectors // 2
            sectors = {0xFFFF: range(self.chip.sectors), 0xFFFE: range(half),
                       0xFFFD: range(half, self.chip.sectors)}[count]
        else:
            body = link.read(2 * (count + 1))
            checksum = link.read1()
            sectors = [int.from_bytes(body[i:i + 2], "big") for i in range(0, len(body), 2)]
            if bl.xor(head + body) != checksum or max(sectors) >= self.chip.sectors:
                link.write(bytes([bl.NACK]))
                return
        link.write(bytes([bl.BUSY]))
        for sector in sectors:
            self.flash.erase_sector(sector)
        self.log(f"erased {len(sectors)} sector(s)")
        link.write(bytes([bl.ACK]))


def known_chip(product_id: int) -> Chip:
    try:
        return CHIPS[product_id]
    except KeyError:
        known = ", ".join(f"0x{p:03X}" for p in CHIPS)
        raise SerialToolError(f"unknown product id 0x{product_id:03X}; known: {known}") from None
