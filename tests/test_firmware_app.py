"""The firmware's side of the serial protocol: the C frames against the shared vectors (under
AddressSanitizer and UBSan, with garbage), and the application image answering `speechmask
board` on a pseudo-terminal natively and on QEMU's Cortex-M7, bit for bit with the reference."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_export.build import build
from firmware_export.csources import CORE
from firmware_export.serial import protocol as p

FIRMWARE = CORE.parent
VECTORS = Path(p.__file__).with_name("protocol_vectors.txt")
SPEECHMASK = [sys.executable, "-m", "speechmask"]


def _garbage(seed: int) -> bytes:
    """Random bytes with magics, right versions and wild lengths sprinkled in: every branch of
    the parser's header and CRC checks."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < 60_000:
        kind = rng.random()
        if kind < 0.3:
            out += b"SM" + bytes([1, rng.randrange(256)]) + rng.randbytes(2) \
                + rng.randrange(0, 3000).to_bytes(2, "little")
        elif kind < 0.4:
            good = p.Frame(rng.randrange(256), rng.randrange(65536), rng.randbytes(20)).encode()
            cut = rng.randrange(1, len(good))
            out += good[:cut]  # a frame cut short
        else:
            out += rng.randbytes(rng.randrange(1, 80))
    return bytes(out)


@pytest.fixture(scope="module")
def proto_test(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("proto") / "proto_test"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-g",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    f"-I{CORE}", "-o", str(exe), str(FIRMWARE / "selftest" / "proto_test.c"),
                    str(CORE / "sm_proto.c")], check=True)
    return exe


def _c_frames(exe: Path, stream: bytes) -> tuple[list[tuple], int]:
    done = subprocess.run([str(exe), str(VECTORS)], input=stream, capture_output=True,
                          timeout=120)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    vectors = [ln for ln in VECTORS.read_text().splitlines() if ln and not ln.startswith("#")]
    assert out.count(": ok") == len(vectors)
    frames = [(int(t, 16), int(q, 16), int(n), int(c, 16)) for _, t, q, n, c in
              (ln.split() for ln in out.splitlines() if ln.startswith("frame "))]
    errors = int(next(ln for ln in out.splitlines() if ln.startswith("errors ")).split()[1])
    return frames, errors


def _py_frames(stream: bytes) -> tuple[list[tuple], int]:
    import zlib

    parser = p.Parser()
    found = parser.feed(stream)
    return [(f.type, f.seq, len(f.payload), zlib.crc32(f.payload)) for f in found], parser.errors


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_parsers_find_the_same_frames(proto_test, seed):
    """The same bytes (garbage, half frames, frames inside corrupt frames, good frames) through
    both parsers, under ASan/UBSan for the C: the same frames in the same order, the same error
    count; and a frame after FLUSH is always found."""
    import zlib

    rng = random.Random(seed)
    stream = bytearray(_garbage(seed))
    for k in range(40):  # good frames sprinkled in
        at = rng.randrange(len(stream))
        stream[at:at] = p.Frame(rng.randrange(256), k, rng.randbytes(rng.randrange(50))).encode()
    # a frame inside a dropped one, then frames right after it: both must come through
    inner = p.Frame(p.Type.INFO, 1).encode() + p.Frame(p.Type.STATS, 2).encode()
    stream += p.HEADER.pack(p.MAGIC, p.VERSION, 1, 9, len(inner) + 10) + inner + bytes(10)
    stream += p.FLUSH + p.Frame(p.Type.INFO, 7).encode()
    c_frames, c_errors = _c_frames(proto_test, bytes(stream))
    py_frames, py_errors = _py_frames(bytes(stream))
    assert c_frames == py_frames and c_errors == py_errors
    assert c_frames[-1] == (p.Type.INFO, 7, 0, zlib.crc32(b""))
    assert (p.Type.STATS, 2, 0, zlib.crc32(b"")) in c_frames


# -- the application image behind a pseudo-terminal ----------------------------------------

@pytest.fixture(scope="module")
def utterance(tiny_corpus) -> Path:
    row = json.loads(tiny_corpus.read_text().splitlines()[0])
    return tiny_corpus.parent / row["path"]


def _stream_check(port: str, export_dir: Path, utterance: Path, level: int) -> str:
    done = subprocess.run(SPEECHMASK + ["board", "stream", str(utterance), "--port", port,
                                        "--check", "--export", str(export_dir), "--level",
                                        str(level), "--chunk", "517"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal the host reference bit for bit" in done.stdout
    return done.stdout


def test_host_app_on_a_pty_equals_the_reference(export_dir, utterance, tmp_path):
    image = build(export_dir, "host", tmp_path / "app", "app")
    master, slave = os.openpty()
    import tty

    tty.setraw(slave)
    proc = subprocess.Popen([str(image.elf)], stdin=master, stdout=master)
    try:
        port = os.ttyname(slave)
        out = _stream_check(port, export_dir, utterance, level=-1)
        assert "on the board" not in out  # the host counts nothing
        info = subprocess.run(SPEECHMASK + ["board", "info", "--port", port],
                              capture_output=True, text=True, timeout=60)
        export_id = json.loads((export_dir / "report.json").read_text())["export_id"]
        assert info.returncode == 0 and f"export_id           {export_id}" in info.stdout
        assert "speechmask-firmware" in info.stdout
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.qemu
def test_flash_then_stream_through_the_qemu_firmware(export_dir, utterance, tmp_path):
    """The whole path of issue #17: flash the STM32H7 app through the emulated bootloader, Go,
    and the real C firmware on QEMU's Cortex-M7, behind the same pty, equals the reference."""
    h7 = build(export_dir, "stm32h7", tmp_path / "h7", "app")
    proc = subprocess.Popen(SPEECHMASK + ["board", "emulate", "--qemu", "--export",
                                          str(export_dir), "--flash-image",
                                          str(tmp_path / "flash.bin")],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        done = subprocess.run(SPEECHMASK + ["flash", str(h7.bin), "--port", port, "--verify",
                                            "--go"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = _stream_check(port, export_dir, utterance, level=2)
        per_second = float(out.split("on the board: ")[1].split(" M")[0])
        assert 1.0 < per_second < 100.0  # instructions counted, in a plausible range
        stats = subprocess.run(SPEECHMASK + ["board", "stats", "--port", port],
                               capture_output=True, text=True, timeout=60)
        assert stats.returncode == 0 and "bad_frames       0" in stats.stdout
    finally:
        from test_serial_flash import _stop

        _stop(proc)
    flashed = (tmp_path / "flash.bin").read_bytes()[:len(h7.bin.read_bytes())]
    assert flashed == h7.bin.read_bytes()
    assert not subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).stdout


def test_stm32h7_region_programs_whole_flash_words_in_order(tmp_path):
    exe = tmp_path / "region_test"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{CORE}",
                    f"-I{FIRMWARE / 'boards' / 'stm32h7'}", "-o", str(exe),
                    str(FIRMWARE / "selftest" / "region_test.c")], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True)
    assert done.returncode == 0 and "region: ok" in done.stdout, done.stdout + done.stderr


def test_stm32h7_app_leaves_the_model_region_free(export_dir, tmp_path):
    """The image's loadable bytes end below the last sector (0x081E0000), which the app's
    region.c erases and programs; the app carries the flash driver, the self-test does not
    need it."""
    image = build(export_dir, "stm32h7", tmp_path / "h7", "app")
    out = subprocess.run(["arm-none-eabi-readelf", "-lW", str(image.elf)], capture_output=True,
                         text=True, check=True).stdout
    ends = [int(f[3], 16) + int(f[4], 16) for f in (ln.split() for ln in out.splitlines())
            if f and f[0] == "LOAD" and int(f[4], 16) > 0]
    assert ends and max(ends) <= 0x081E0000
    syms = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True, text=True,
                          check=True).stdout
    assert "sm_board_region_program" in syms
