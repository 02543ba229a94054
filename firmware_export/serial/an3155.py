"""The STM32 system bootloader's USART protocol (ST AN3155), host side, on a pyserial port.

Written here rather than taken from stm32loader (GPL-3.0, where this project is Apache-2.0;
stm32loader is used only as an independent client in the tests) because the flasher needs what
that library leaves out: resynchronisation and retries after a NACK or a lost byte, the busy
byte (0x76) during long erases, a write that checks whether a lost ACK hid a completed write,
and per-part sector layouts.

Frames: a command is its byte and its complement; addresses are 4 bytes big-endian plus their
XOR; data is a length byte (N-1), N bytes and the XOR of all; replies start with ACK (0x79) or
NACK (0x1F)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import reduce
from typing import Protocol

from .image import SerialToolError

SYNC = 0x7F
ACK = 0x79
NACK = 0x1F
BUSY = 0x76  # sent by newer bootloaders while an erase is under way

GET = 0x00
GET_VERSION = 0x01
GET_ID = 0x02
READ_MEMORY = 0x11
GO = 0x21
WRITE_MEMORY = 0x31
ERASE = 0x43
EXTENDED_ERASE = 0x44

MAX_FRAME = 256  # bytes per Read/Write Memory
MASS_ERASE = 0xFFFF


class Port(Protocol):
    """What the client needs of a port: pyserial's `serial.Serial` has it."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def reset_input_buffer(self) -> None: ...


class Nack(SerialToolError):
    """The bootloader refused a command or its arguments (NACK)."""


class NoReply(SerialToolError):
    """The bootloader did not answer in time, or answered with an unexpected byte."""


def xor(data: bytes | bytearray, start: int = 0) -> int:
    return reduce(lambda a, b: a ^ b, data, start)


def address_frame(address: int) -> bytes:
    raw = address.to_bytes(4, "big")
    return raw + bytes([xor(raw)])


@dataclass(frozen=True)
class BootloaderInfo:
    version: int
    commands: tuple[int, ...]
    product_id: int


class Bootloader:
    """One bootloader session on `port` (8E1, opened by the caller). Every command retries
    `retries` times after a NACK or a timeout, resynchronising first."""

    def __init__(self, port: Port, retries: int = 3, erase_timeout_s: float = 60.0):
        self.port = port
        self.retries = retries
        self.erase_timeout_s = erase_timeout_s
        self.commands: tuple[int, ...] = ()

    # -- framing -----------------------------------------------------------------------------
    def _read(self, n: int, what: str) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise NoReply(f"{self._name()}: no reply to {what} (got {len(data)} of {n} bytes)")
        return data

    def _ack(self, what: str, timeout_s: float | None = None) -> None:
        """Wait for ACK; busy bytes (0x76) and silence are waited through until the deadline:
        the port's timeout, or `timeout_s` for long operations."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None
                                       else (self.port.timeout or 1.0))
        while True:
            byte = self.port.read(1)
            if byte == bytes([ACK]):
                return
            if byte == bytes([NACK]):
                raise Nack(f"{self._name()}: the bootloader refused {what} (NACK)")
            if byte not in (b"", bytes([BUSY])):
                raise NoReply(f"{self._name()}: unexpected byte 0x{byte[0]:02X} in reply to "
                              f"{what}")
            if time.monotonic() >= deadline:
                raise NoReply(f"{self._name()}: no reply to {what}"
                              + (" (busy until the deadline)" if byte else ""))

    def _command(self, code: int, what: str) -> None:
        self.port.write(bytes([code, code ^ 0xFF]))
        self._ack(what)

    def _name(self) -> str:
        return str(getattr(self.port, "port", None) or getattr(self.port, "name", "port"))

    def _retry(self, what: str, attempt):
        last: SerialToolError | None = None
        for i in range(self.retries + 1):
            if i:
                self.resync()
            try:
                return attempt()
            except (Nack, NoReply) as exc:
                last = exc
        assert last is not None
        raise type(last)(f"{last} ({self.retries + 1} attempts)")

    # -- session -----------------------------------------------------------------------------
    def connect(self, attempts: int = 5) -> None:
        """Send the 0x7F that starts the bootloader's USART session. A NACK means a session is
        already running (the bootloader took 0x7F as a command byte), which is as good."""
        self.port.reset_input_buffer()
        for _ in range(attempts):
            self.port.write(bytes([SYNC]))
            byte = self.port.read(1)
            if byte in (bytes([ACK]), bytes([NACK])):
                self.port.reset_input_buffer()
                return
        raise NoReply(f"{self._name()}: no bootloader answers (sent 0x7F {attempts} times; is "
                      "the board in its system bootloader, BOOT0 high, at 8E1?)")

    def resync(self, attempts: int = 400) -> None:
        """Bring the bootloader back to waiting for a command byte. Send an unknown command
        (0x7F 0x80) until it answers NACK: whatever frame it was in swallows the first bytes and
        fails its checksum. That may leave one byte of ours pending as a command byte, so one
        more 0x7F settles it: NACK at once (it was pending: "0x80 0x7F" is another unknown
        command), or silence (the 0x7F is now pending, and 0x80 completes it: NACK). 400 pairs
        outlast any Read or Write frame; an Extended Erase whose count a lost byte corrupted can
        wait for more (up to 131 KB), and then only a reset of the board helps."""
        saved = self.port.timeout
        self.port.timeout = 0.05
        try:
            for _ in range(attempts):
                self.port.write(bytes([SYNC, SYNC ^ 0xFF]))
                if self.port.read(1) == bytes([NACK]):
                    break
            else:
                raise NoReply(f"{self._name()}: the bootloader does not resynchronise")
            self._drain()
            self.port.write(bytes([SYNC]))
            if self.port.read(1) != bytes([NACK]):
                self.port.write(bytes([SYNC ^ 0xFF]))
                if self.port.read(1) != bytes([NACK]):
                    raise NoReply(f"{self._name()}: the bootloader does not resynchronise")
            self._drain()
        finally:
            self.port.timeout = saved

    def _drain(self) -> None:
        """Drop replies still on their way (the port's timeout is short here)."""
        while self.port.read(64):
            pass

    # -- commands ----------------------------------------------------------------------------
    def get(self) -> tuple[int, tuple[int, ...]]:
        def attempt():
            self._command(GET, "Get")
            n = self._read(1, "Get")[0]
            body = self._read(n + 1, "Get")
            self._ack("Get")
            return body[0], tuple(body[1:])
        version, self.commands = self._retry("Get", attempt)
        return version, self.commands

    def get_version(self) -> int:
        def attempt():
            self._command(GET_VERSION, "Get Version")
            version = self._read(3, "Get Version")[0]
            self._ack("Get Version")
            return version
        return self._retry("Get Version", attempt)

    def get_id(self) -> int:
        def attempt():
            self._command(GET_ID, "Get ID")
            n = self._read(1, "Get ID")[0]
            pid = int.from_bytes(self._read(n + 1, "Get ID"), "big")
            self._ack("Get ID")
            return pid
        return self._retry("Get ID", attempt)

    def info(self) -> BootloaderInfo:
        version, commands = self.get()
        return BootloaderInfo(version, commands, self.get_id())

    def read_memory(self, address: int, n: int) -> bytes:
        if not 1 <= n <= MAX_FRAME:
            raise ValueError(f"read of {n} bytes: 1..{MAX_FRAME} per frame")

        def attempt():
            self._command(READ_MEMORY, "Read Memory")
            self.port.write(address_frame(address))
            self._ack(f"Read Memory at 0x{address:08X}")
            self.port.write(bytes([n - 1, (n - 1) ^ 0xFF]))
            self._ack(f"Read Memory of {n} bytes")
            return self._read(n, f"Read Memory at 0x{address:08X}")
        return self._retry("Read Memory", attempt)

    def write_memory(self, address: int, data: bytes) -> None:
        """Write at most 256 bytes (padded with 0xFF to a multiple of 4, as AN3155 requires).
        After a failed attempt the block is read back first: an ACK lost on the way means the
        write happened, and flash cannot be written twice without an erase."""
        if not 1 <= len(data) <= MAX_FRAME:
            raise ValueError(f"write of {len(data)} bytes: 1..{MAX_FRAME} per frame")
        data = bytes(data) + b"\xff" * (-len(data) % 4)
        first = [True]

        def attempt():
            if not first[0] and self.read_memory(address, len(data)) == data:
                return
            first[0] = False
            self._command(WRITE_MEMORY, "Write Memory")
            self.port.write(address_frame(address))
            self._ack(f"Write Memory at 0x{address:08X}")
            frame = bytes([len(data) - 1]) + data
            self.port.write(frame + bytes([xor(frame)]))
            self._ack(f"Write Memory of {len(data)} bytes at 0x{address:08X}")
        self._retry("Write Memory", attempt)

    def erase(self, sectors: list[int] | None) -> None:
        """Extended Erase of `sectors` (2-byte numbers), or a mass erase when None."""
        if sectors is not None and not 1 <= len(sectors) <= 0xFFF0:
            raise ValueError("erase 1..65520 sectors at a time")
        if sectors is None:
            frame = MASS_ERASE.to_bytes(2, "big")
        else:
            frame = (len(sectors) - 1).to_bytes(2, "big") + b"".join(
                s.to_bytes(2, "big") for s in sectors)
        what = "mass erase" if sectors is None else f"erase of sectors {sectors}"

        def attempt():
            self._command(EXTENDED_ERASE, "Extended Erase")
            self.port.write(frame + bytes([xor(frame)]))
            self._ack(what, timeout_s=self.erase_timeout_s)
        self._retry(what, attempt)

    def go(self, address: int) -> None:
        def attempt():
            self._command(GO, "Go")
            self.port.write(address_frame(address))
            self._ack(f"Go to 0x{address:08X}")
        self._retry("Go", attempt)
