"""The real application firmware on QEMU's Cortex-M7 (mps2-an500) behind the emulator's serial
port: `speechmask board emulate --qemu`.

The export's app image is built for mps2-an500 and run under `qemu-system-arm -icount shift=0`
(so the firmware's SysTick counts instructions). Its UART0 is a QEMU socket chardev that waits
for our connection before the core starts (`server=on,wait=on`), so nothing the firmware sends
is lost; the emulator then copies bytes both ways between that socket and its pseudo-terminal.
Compared with `-serial pty`, the client keeps the one port path it flashed through, and the
firmware cannot start before anyone listens. The bytes flashed through the bootloader stay in
the emulated flash: QEMU runs the same sources built for its own board (an STM32H7 image does
not run on mps2-an500's memory map)."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .image import SerialToolError
from .pty_link import Closed


class QemuApp:
    def __init__(self, export_dir: Path, log=lambda line: None):
        from ..build import build, check_export

        if shutil.which("qemu-system-arm") is None:
            raise SerialToolError("qemu-system-arm: not found (make install sets it up)")
        check_export(export_dir)
        self.log = log
        self._dir = Path(tempfile.mkdtemp(prefix="speechmask-qemu-"))
        image = build(export_dir, "mps2-an500", self._dir / "build", "app")
        self.elf = image.elf
        log(f"built {self.elf} (text {image.sizes['text']} B, data {image.sizes['data']} B, "
            f"bss {image.sizes['bss']} B)")

    def command(self, sock: Path) -> list[str]:
        return ["qemu-system-arm", "-M", "mps2-an500", "-nographic", "-monitor", "none",
                "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
                "-chardev", f"socket,id=link,path={sock},server=on,wait=on",
                "-serial", "chardev:link", "-kernel", str(self.elf)]

    def serve(self, link) -> None:
        """Run the firmware until `link` stops; then stop QEMU (by its PID)."""
        sock_path = self._dir / "uart0.sock"
        sock_path.unlink(missing_ok=True)
        log_path = self._dir / "qemu.log"  # a file, not a pipe nobody reads
        with open(log_path, "wb") as qemu_log:
            qemu = subprocess.Popen(self.command(sock_path), stdin=subprocess.DEVNULL,
                                    stdout=qemu_log, stderr=subprocess.STDOUT)
        self.log(f"qemu-system-arm (pid {qemu.pid}) runs the firmware")
        try:
            sock = self._connect(sock_path, qemu)
            with sock:
                self._bridge(link, sock, qemu)
        finally:
            qemu.terminate()
            try:
                qemu.wait(5)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()

    def _connect(self, path: Path, qemu: subprocess.Popen) -> socket.socket:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if qemu.poll() is not None:
                said = (self._dir / "qemu.log").read_text(errors="replace").strip()
                raise SerialToolError(f"qemu-system-arm exited ({qemu.returncode}): {said}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                time.sleep(0.05)
        raise SerialToolError("qemu-system-arm did not open its serial socket within 30 s")

    def _bridge(self, link, sock: socket.socket, qemu: subprocess.Popen) -> None:
        import os

        sock.sendall(link.take_pending())
        while qemu.poll() is None:
            ready, _, _ = select.select([link.master, sock], [], [], 0.05)
            if link.stopped:
                raise Closed
            if link.master in ready:
                try:
                    data = os.read(link.master, 4096)
                except OSError:
                    data = b""
                if data:
                    sock.sendall(data)
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    break
                link.write(data)
        raise SerialToolError(f"qemu-system-arm stopped (exit {qemu.returncode})")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
