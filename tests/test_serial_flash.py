"""The STM32 bootloader client and emulator: images, flashing through a real pseudo-terminal
with pyserial, resumption, retries after lost or corrupted bytes, and interop with stm32flash."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import serial

from firmware_export.serial import an3155
from firmware_export.serial.bootloader_emu import BootloaderEmulator, FlashFile, known_chip
from firmware_export.serial.chips import FLASH_BASE
from firmware_export.serial.flasher import FlashConfig, flash_image
from firmware_export.serial.image import SerialToolError, load_image
from firmware_export.serial.pty_link import Closed, PtyLink

SPEECHMASK = [sys.executable, "-m", "speechmask"]


class Board:
    """An emulated bootloader serving on a pty in a thread; `link_type` injects faults."""

    def __init__(self, flash_path: Path, product_id: int = 0x450, link_type=PtyLink):
        self.flash = FlashFile(flash_path, known_chip(product_id))
        self.link = link_type()
        self.path = self.link.path
        self.gone_to: list[int] = []
        self.emulator = BootloaderEmulator(self.flash, on_go=self.gone_to.append)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.emulator.serve(self.link)
        except Closed:
            pass

    def port(self, timeout: float = 0.3) -> serial.Serial:
        return serial.Serial(self.path, 115200, timeout=timeout)

    def close(self) -> None:
        self.link.stop()
        self.thread.join(5)
        self.link.close()
        self.flash.close()


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path / "flash.bin")
    yield b
    b.close()


@pytest.fixture
def firmware(tmp_path) -> Path:
    """300,001 bytes spanning three 128 KiB sectors, with a run of 0xFF blocks inside."""
    data = bytearray(os.urandom(300_001))
    data[4096:8192] = b"\xff" * 4096
    path = tmp_path / "fw.bin"
    path.write_bytes(bytes(data))
    return path


def _flash(board: Board, path: Path, **cfg):
    with board.port() as port:
        return flash_image(port, load_image(path), FlashConfig(**cfg), port_name=board.path)


def test_flash_writes_skips_and_resumes(board, firmware):
    data = firmware.read_bytes()
    first = _flash(board, firmware, verify=True)
    assert board.flash.read(FLASH_BASE, len(data)) == data
    assert first.blocks == 1172 and first.written == 1172 - 16 and first.sectors_erased == []
    again = _flash(board, firmware)
    assert again.written == 0 and again.sectors_erased == []

    # a changed image: only the sector holding the change is erased, and rewritten
    changed = bytearray(data)
    changed[200_000] ^= 0x55
    firmware.write_bytes(bytes(changed))
    report = _flash(board, firmware, verify=True)
    assert report.sectors_erased == [1] and report.written == 512
    assert board.flash.read(FLASH_BASE, len(data)) == bytes(changed)


def test_interrupted_flash_resumes(board, firmware):
    written = []

    def progress(label, total):
        def step():
            if label == "writing":
                written.append(1)
                if len(written) == 400:
                    raise KeyboardInterrupt
        return step

    with board.port() as port, pytest.raises(KeyboardInterrupt):
        flash_image(port, load_image(firmware), FlashConfig(), progress=progress)
    report = _flash(board, firmware, verify=True)
    assert report.written == 1172 - 16 - 400 and report.sectors_erased == []
    assert board.flash.read(FLASH_BASE, 300_001) == firmware.read_bytes()


def test_mass_erase_and_go(board, firmware):
    board.flash.program(0x0810_0000, b"\x00" * 4)  # something in bank 2
    report = _flash(board, firmware, erase="mass", go=True)
    assert report.sectors_erased == list(range(16))
    assert board.flash.read(0x0810_0000, 4) == b"\xff" * 4
    for _ in range(50):
        if board.gone_to:
            break
        threading.Event().wait(0.02)
    assert board.gone_to == [FLASH_BASE]


class DroppingLink(PtyLink):
    """Loses the client's bytes number 300, 2000 and 9000 on the way to the board, and flips
    a bit in byte 5000: a timeout, a checksum NACK, and resynchronisation in mid-frame."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def read1(self) -> int:
        while True:
            byte = super().read1()
            self.count += 1
            if self.count in (300, 2000, 9000):
                continue
            return byte ^ 1 if self.count == 5000 else byte


def test_retries_after_lost_and_corrupt_bytes(tmp_path, firmware):
    board = Board(tmp_path / "flash.bin", link_type=DroppingLink)
    try:
        report = _flash(board, firmware, verify=True)
        assert board.flash.read(FLASH_BASE, 300_001) == firmware.read_bytes()
        assert report.written == 1172 - 16
        assert board.link.count > 9000
    finally:
        board.close()


def test_flash_is_programmed_only_when_erased(board):
    with board.port() as port:
        boot = an3155.Bootloader(port, retries=1)
        boot.connect()
        boot.write_memory(FLASH_BASE, b"\x12\x34\x56\x78")
        with pytest.raises(an3155.Nack, match="refused Write Memory"):
            boot.write_memory(FLASH_BASE, b"\x00\x00\x00\x00")
        assert boot.read_memory(FLASH_BASE, 4) == b"\x12\x34\x56\x78"
        # the bootloader's identity, as stm32flash and ST's tools read it
        assert boot.get_id() == 0x450 and boot.get_version() == 0x90
        assert an3155.EXTENDED_ERASE in boot.get()[1]
        assert boot.read_memory(0x1FF1E880, 2) == (2048).to_bytes(2, "little")
        with pytest.raises(an3155.Nack, match="Go to 0x30000000"):  # no memory there
            boot.go(0x3000_0000)


def test_emulated_flash_survives_a_restart(tmp_path, firmware):
    board = Board(tmp_path / "flash.bin")
    _flash(board, firmware)
    board.close()
    board = Board(tmp_path / "flash.bin")
    try:
        assert _flash(board, firmware).written == 0
    finally:
        board.close()


@pytest.mark.parametrize("product_id,sector_kib,erased", [(0x480, 8, [0, 1]), (0x483, 128, [0])])
def test_other_h7_parts(tmp_path, product_id, sector_kib, erased):
    board = Board(tmp_path / "flash.bin", product_id=product_id)
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(10_000))
    try:
        board.flash.program(FLASH_BASE + 9000 - 9000 % 256 + 256 * 0, b"\0" * 4)
        board.flash.program(FLASH_BASE, b"\0" * 4)
        report = _flash(board, path, verify=True)
        assert report.sectors_erased == erased
        assert board.flash.chip.sector_bytes == sector_kib * 1024
    finally:
        board.close()


def test_images_bin_hex_elf_agree(tmp_path, firmware):
    from intelhex import IntelHex

    ih = IntelHex()
    ih.frombytes(firmware.read_bytes(), offset=FLASH_BASE)
    ih.write_hex_file(str(tmp_path / "fw.hex"))
    obj = tmp_path / "fw.o"  # a linked ELF at the start of flash, as the firmware build makes
    subprocess.run(["arm-none-eabi-objcopy", "-I", "binary", "-O", "elf32-littlearm",
                    "--rename-section", ".data=.text,alloc,load,contents,code", str(firmware),
                    str(obj)], check=True)
    subprocess.run(["arm-none-eabi-ld", f"-Ttext={FLASH_BASE:#x}", "-e", f"{FLASH_BASE:#x}",
                    "-o", str(tmp_path / "fw.elf"), str(obj)], check=True)
    want = load_image(firmware).blocks(256)
    assert load_image(tmp_path / "fw.hex").blocks(256) == want
    assert load_image(tmp_path / "fw.elf").blocks(256) == want
    assert load_image(firmware, address=FLASH_BASE + 0x100).start == FLASH_BASE + 0x100


@pytest.mark.parametrize("name,content,message", [
    ("bad.hex", b":garbage\n", "not a valid Intel hex file"),
    ("bad.elf", b"\x7fELF" + random.Random(0).randbytes(40), "not a valid ELF file"),
    ("empty.bin", b"", "holds no bytes"),
    ("fw.srec", b"S0030000FC\n", "unknown firmware format"),
])
def test_bad_images_one_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SerialToolError, match=message):
        load_image(tmp_path / name)


def test_image_outside_flash_refused(board, tmp_path):
    path = tmp_path / "fw.bin"
    path.write_bytes(b"\0" * 512)
    with board.port() as port, pytest.raises(SerialToolError, match="outside STM32H74x"):
        flash_image(port, load_image(path, address=0x081F_FF00), FlashConfig())


def test_no_bootloader_answers(tmp_path):
    link = PtyLink()  # nobody serves it
    try:
        with serial.Serial(link.path, 115200, timeout=0.05) as port:
            with pytest.raises(an3155.NoReply, match="no bootloader answers"):
                an3155.Bootloader(port).connect(attempts=2)
    finally:
        link.close()


# -- the command line, and stm32flash as an independent client ------------------------------

def _emulate(flash_image_path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(SPEECHMASK + ["board", "emulate", "--flash-image",
                                          str(flash_image_path)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as a user's Ctrl-C; killed if it does not stop, so no test leaves it running."""
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(20) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_cli_and_stm32flash_write_the_same_flash(tmp_path, firmware):
    assert shutil.which("stm32flash"), "make install sets up stm32flash"
    ours, theirs = tmp_path / "ours.bin", tmp_path / "theirs.bin"
    proc, path = _emulate(ours)
    try:
        done = subprocess.run(SPEECHMASK + ["flash", str(firmware), "--port", path, "--verify",
                                            "--json", str(tmp_path / "r.json")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "1156 written" in done.stdout and "verified" in done.stdout
        # stm32flash reads back what we wrote
        back = tmp_path / "back.bin"
        done = subprocess.run(["stm32flash", "-m", "8n1", "-r", str(back), "-S",
                               f"0x08000000:{firmware.stat().st_size}", path],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert back.read_bytes() == firmware.read_bytes()
    finally:
        _stop(proc)
    proc, path = _emulate(theirs)
    try:
        done = subprocess.run(["stm32flash", "-m", "8n1", "-w", str(firmware), "-v", path],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        _stop(proc)
    assert ours.read_bytes() == theirs.read_bytes()


def test_reset_line_on_a_pty_is_refused_in_one_line(tmp_path, firmware):
    proc, path = _emulate(tmp_path / "flash.bin")
    try:
        done = subprocess.run(SPEECHMASK + ["flash", str(firmware), "--port", path, "--reset",
                                            "dtr"], capture_output=True, text=True, timeout=60)
    finally:
        _stop(proc)
    assert done.returncode == 1 and "cannot drive DTR" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["missing.bin", "--port", "/dev/null"], "missing.bin: no such firmware file"),
    (["fw.bin", "--port", "/nonexistent/tty"], "/nonexistent/tty: cannot open the serial port"),
    (["fw.elf", "--port", "/dev/null", "--address", "0x08000000"], "--address applies to .bin"),
    (["fw.bin", "--port", "/dev/null", "--retries", "-1"], "--retries must be an integer >= 0"),
    (["fw.bin", "--port", "/dev/null", "--timeout", "0"], "--timeout must be > 0"),
])
def test_cli_bad_input_one_line(tmp_path, args, message):
    (tmp_path / "fw.bin").write_bytes(b"\0" * 16)
    (tmp_path / "fw.elf").write_bytes(b"\0" * 16)
    done = subprocess.run(SPEECHMASK + ["flash", *args], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
