"""The self-test firmware (`speechmask firmware build`) of a real export (conftest's `export_dir`):
built with the host gcc and for QEMU's Cortex-M7 (mps2-an500) with arm-none-eabi-gcc, run
natively and under qemu-system-arm, streaming a whole TTS utterance through the C front-end and
send steps against the Python reference's test vectors and running the generated int8 model on
real calls against TFLite Micro's outputs; a wrong vector makes it fail, and the CLI's refusals
are one line."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from speechmask.api import load_mask
from speechmask.cli import main

from firmware_export.build import build, run
from firmware_export.vectors import frontend_vectors

STAMP = {"contract_version": 1, "export_id": "00000000000000bb"}


def _level(export_dir) -> int:
    text = (export_dir / "test_vectors.h").read_text()
    return int(re.search(r"#define SM_TV_WARP_LEVEL (-?\d+)", text).group(1))


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["host", "mps2-an500"])
def test_self_test_passes_natively_and_on_the_emulated_cortex_m7(export_dir, tmp_path, board):
    assert _level(export_dir) != 0, "the vectors exercise the warp"
    image = build(export_dir, board, tmp_path)
    assert image.sizes["text"] > 0 and image.elf.is_file()
    done = run(image)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("0 feature and 0 sent values differ") == 4
    assert re.search(r"model: (\d+) calls, 0 output values differ from TFLite Micro", done.stdout)
    assert int(re.search(r"model: (\d+) calls", done.stdout).group(1)) > 0
    # the whole job: the gates of the model's closed loop and the sent features, as sent
    segments = re.findall(r"device, chunk \d+: (\d+) segments \(expected (\d+)\), "
                          r"0 gates and 0 sent values differ", done.stdout)
    assert len(segments) == 2 and all(a == b and int(a) > 0 for a, b in segments)
    assert done.stdout.strip().endswith("PASS")
    frames = int(re.search(r"#define SM_TV_FRAMES (\d+)",
                           (export_dir / "test_vectors.h").read_text()).group(1))
    assert f"{frames} frames (expected {frames})" in done.stdout


@pytest.mark.qemu
def test_cortex_m7_image_layout(export_dir, tmp_path):
    """The vector table first at 0 (the reset vector QEMU reads), code in the 4 MB at 0, data and
    bss in the RAM at 0x20000000, as the linker script says; the .bin is the loadable image."""
    image = build(export_dir, "mps2-an500", tmp_path)
    sections = _sections(image.elf)
    assert sections[".isr_vector"] == (0, 64)
    assert 0 < sections[".text"][0] < 0x400000
    for name in (".data", ".bss"):
        assert 0x20000000 <= sections[name][0] < 0x20400000
    words = np.frombuffer(image.bin.read_bytes()[:8], "<u4")
    assert words[0] == 0x20400000  # initial stack pointer: the top of RAM
    assert words[1] & 1 == 1  # the reset handler, in Thumb state


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["host", "mps2-an500"])
def test_a_wrong_vector_fails_the_self_test(export_dir, tmp_path, board):
    bad = _copy_export(export_dir, tmp_path / "export")
    text = (export_dir / "test_vectors.h").read_text()
    head, tail = text.split("sm_tv_sent[", 1)
    body = re.sub(r"-?\d+", lambda m: str(int(m.group()) + 1), tail.split("{", 1)[1], count=1)
    (bad / "test_vectors.h").write_text(head + "sm_tv_sent[" + tail.split("{", 1)[0] + "{"
                                        + body)
    done = run(build(bad, board, tmp_path / "out"))
    assert done.returncode == 1
    assert "1 sent values differ" in done.stdout and "FAIL" in done.stdout


@pytest.mark.qemu
def test_cli_builds_runs_and_refuses(export_dir, tmp_path, capsys):
    out = tmp_path / "m7"
    args = ["firmware", "build", "--export", str(export_dir), "--out", str(out)]
    assert main(args + ["--run"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"mps2-an500: .*selftest\.elf \(text \d+ B, data \d+ B, bss \d+ B\)", printed)
    assert "PASS" in printed and (out / "selftest.bin").is_file()
    # the folder is a project of its own: its Makefile rebuilds the image without Python
    assert (out / "Makefile").is_file() and (out / "src" / "sm_model.c").is_file()
    (out / "selftest.elf").unlink()
    subprocess.run(["make", "-s", "-C", str(out)], check=True)
    assert (out / "selftest.elf").is_file()
    with pytest.raises(SystemExit) as exc:  # an earlier build is kept without --force
        main(args)
    assert exc.value.code == 1
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    with pytest.raises(SystemExit):
        main(["firmware", "build", "--export", str(tmp_path), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test_vectors.h" in err[0] and "run speechmask export" in err[0]


def test_vectors_refuse_pcm_shorter_than_a_frame(mask_path):
    cfg = load_mask(mask_path).cfg
    with pytest.raises(ValueError, match="at least one frame"):
        frontend_vectors(np.zeros(cfg.frontend.win_length - 1, np.int16), cfg, STAMP)


@pytest.mark.qemu
def test_cortex_m7_counts_instructions_and_stack(export_dir, tmp_path):
    """Under `-icount shift=0` the self-test's first pass reports each step's SysTick ticks (40
    instructions each) and the stack's high-water mark; the host build reports none."""
    image = build(export_dir, "mps2-an500", tmp_path / "m7")
    done = run(image, count=True)
    assert done.returncode == 0
    fields = re.search(r"^cost: (.*)$", done.stdout, re.M).group(1).split()
    cost = dict(zip(fields[::2], map(int, fields[1::2])))
    assert cost["instructions_per_tick"] == 40
    # a frame costs thousands of instructions in the front-end, fewer in the send steps
    assert cost["frontend_ticks"] * 40 > 1000 * cost["frames"] > 0
    assert 0 < cost["send_ticks"] < cost["frontend_ticks"]
    assert cost["model_calls"] > 0 and cost["model_ticks"] > 0
    assert cost["device_ticks"] > cost["frontend_ticks"] and cost["device_state_bytes"] > 0
    assert 0 < cost["stack_bytes"] < 16384
    host = run(build(export_dir, "host", tmp_path / "host"))
    assert host.returncode == 0 and "cost:" not in host.stdout


def _sections(elf) -> dict:
    sections = {}
    for line in subprocess.run(["arm-none-eabi-readelf", "-S", "-W", str(elf)],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]{8})\s+[0-9a-f]+\s+([0-9a-f]+)",
                     line)
        if m:
            sections[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return sections


@pytest.mark.qemu
def test_stm32h7_image_layout(export_dir, tmp_path, capsys):
    """The STM32H743 image, as its linker script places it: the vector table (.isr_vector) at
    0x08000000 where the core boots, code in the 2 MB of flash, .data and .bss in the DTCM with
    .data's load image in flash, the initial stack pointer at the top of the DTCM; the printf
    retarget and the clock set-up are linked in. It runs on a board, not here."""
    image = build(export_dir, "stm32h7", tmp_path)
    sections = _sections(image.elf)
    assert sections[".isr_vector"] == (0x08000000, 64)
    assert 0x08000000 < sections[".text"][0] < 0x08200000
    for name in (".data", ".bss"):
        assert 0x20000000 <= sections[name][0] < 0x20020000
    loads = [line.split() for line in subprocess.run(
        ["arm-none-eabi-readelf", "-l", "-W", str(image.elf)], capture_output=True, text=True,
        check=True).stdout.splitlines() if line.strip().startswith("LOAD")]
    data = next(seg for seg in loads if int(seg[2], 16) == sections[".data"][0])
    assert 0x08000000 <= int(data[3], 16) < 0x08200000  # loaded from flash, copied at reset
    words = np.frombuffer(image.bin.read_bytes()[:8], "<u4")
    assert words[0] == 0x20020000 and words[1] & 1 and 0x08000000 <= words[1] < 0x08200000
    assert image.bin.stat().st_size < 2 * 1024 * 1024
    symbols = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True,
                             text=True, check=True).stdout
    assert " T _write" in symbols and " T sm_system_init" in symbols
    with pytest.raises(SystemExit):
        main(["firmware", "build", "--export", str(export_dir), "--board", "stm32h7",
              "--out", str(tmp_path / "h7"), "--run"])
    assert "runs on the board" in capsys.readouterr().err


def _copy_export(export_dir, to):
    to.mkdir()
    for p in export_dir.iterdir():
        if p.suffix in (".h", ".c"):
            (to / p.name).write_bytes(p.read_bytes())
    return to


@pytest.mark.parametrize("board", ["host", pytest.param("mps2-an500", marks=pytest.mark.qemu)])
def test_a_corrupt_model_is_refused_at_boot(export_dir, tmp_path, board):
    """One weight changed after export (as a flipped flash bit would): the CRC-32 of the model's
    constants no longer matches and the image refuses to run the model (exit status 2)."""
    bad = _copy_export(export_dir, tmp_path / "export")
    text = (bad / "sm_model.c").read_text()
    head, tail = text.split("sm_builtin[", 1)
    name, rest = tail.split("{", 1)
    numbers = iter(range(10 ** 9))  # the 41st byte: the first weight, past the 32-byte header
    rest = re.sub(r"\d+", lambda m: str((int(m.group()) + 1) % 256) if next(numbers) == 40
                  else m.group(), rest)
    (bad / "sm_model.c").write_text(head + "sm_builtin[" + name + "{" + rest)
    done = run(build(bad, board, tmp_path / "out"))
    assert done.returncode == 2
    assert "refused" in done.stdout and "PASS" not in done.stdout


def test_a_model_of_another_export_does_not_build(export_dir, tmp_path):
    from firmware_export.csources import BuildError

    bad = _copy_export(export_dir, tmp_path / "export")
    text = (bad / "sm_model.h").read_text()
    (bad / "sm_model.h").write_text(re.sub(r"SM_MODEL_EXPORT_ID_U64 0x[0-9a-f]+ULL",
                                           "SM_MODEL_EXPORT_ID_U64 0x0123456789abcdefULL", text))
    with pytest.raises(BuildError, match="another export"):
        build(bad, "host", tmp_path / "out")


@pytest.mark.qemu
def test_the_verdict_leaves_by_the_emulated_uart(export_dir, tmp_path):
    """mps2-an500's CMSDK UART0 (0x40004000) is QEMU's first serial port: the self-test's
    verdict arrives there, as a host on the other end of the line would read it."""
    image = build(export_dir, "mps2-an500", tmp_path / "m7")
    uart = tmp_path / "uart.txt"
    done = subprocess.run(["qemu-system-arm", "-M", "mps2-an500", "-nographic", "-semihosting",
                           "-monitor", "none", "-serial", f"file:{uart}", "-kernel",
                           str(image.elf)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert uart.read_text() == "speechmask self-test PASS\n"


def test_an_export_from_another_version_does_not_build(export_dir, tmp_path):
    """Front-end tables laid out for another sm_frontend.c: one line that says to re-export."""
    from firmware_export.csources import BuildError

    old = _copy_export(export_dir, tmp_path / "export")
    text = (old / "speechmask_frontend.h").read_text()
    (old / "speechmask_frontend.h").write_text(
        re.sub(r"#define SM_FRONTEND_TABLES_VERSION \d+\n", "", text))
    with pytest.raises(BuildError, match="re-run speechmask export"):
        build(old, "host", tmp_path / "out")
