"""A pseudo-terminal standing in for the board's end of a USB-serial cable.

The emulator holds the master side; clients (pyserial, stm32flash, stm32loader) open the slave
path as they would /dev/ttyACM0. The emulator keeps a descriptor of the slave open itself, so the
link outlives each client (on Linux the master reads EIO once no slave descriptor is open)."""

from __future__ import annotations

import os
import select
import threading
import tty


def is_pty(path: str) -> bool:
    """Whether `path` is a pseudo-terminal's slave (Unix98 ptys: character majors 136-143)."""
    try:
        return 136 <= os.major(os.stat(path).st_rdev) <= 143
    except OSError:
        return False


class Closed(Exception):
    """The link was stopped while a read waited."""


class PtyLink:
    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline until a client sets its own
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._pending = bytearray()

    def read1(self) -> int:
        """The next byte from the client; blocks until one comes or `stop()`."""
        while not self._pending:
            if self._stop.is_set():
                raise Closed
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self._pending += os.read(self.master, 4096)
                except OSError:  # EIO: no slave open at this instant
                    self._stop.wait(0.05)
        byte = self._pending[0]
        del self._pending[0]
        return byte

    def read_some(self) -> bytes:
        """Every byte waiting (at least one; blocks like `read1`)."""
        first = self.read1()
        out, self._pending = bytes([first]) + bytes(self._pending), bytearray()
        return out

    def take_pending(self) -> bytes:
        """Bytes already read from the client but not consumed (handed to another reader)."""
        out, self._pending = bytes(self._pending), bytearray()
        return out

    def read(self, n: int) -> bytes:
        return bytes(self.read1() for _ in range(n))

    def write(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        while view:
            _, ready, _ = select.select([], [self.master], [], 0.05)
            if self._stop.is_set():
                raise Closed
            if ready:
                view = view[os.write(self.master, view):]

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
