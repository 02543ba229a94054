"""`speechmask firmware build`: the self-test firmware for one board, from an export folder (its
generated headers and test vectors) and the sources shipped in `firmware_export/firmware/`
(core, boards, selftest), and running it where it runs without a board.

Boards: `host` (the machine's gcc; runs natively), `mps2-an500` (QEMU's Cortex-M7:
`arm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard -O2`, newlib with
semihosting; runs under `qemu-system-arm -M mps2-an500 -semihosting`, which passes main's return
value on as its exit code), `stm32h7` (the STM32H743 of a NUCLEO-H743ZI: the same compiler,
newlib-nano, clocks at 480 MHz and the ST-LINK virtual COM port set up by
boards/stm32h7/system.c; built here, run on a board)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .csources import CORE, BuildError

FIRMWARE = CORE.parent
BOARDS = ("host", "mps2-an500", "stm32h7")
#: what the image runs: the self-test (checks itself against the test vectors and exits) or the
#: application (the device job behind the serial protocol, app/app.c; runs until reset)
IMAGES = ("selftest", "app")
#: newlib per Cortex-M7 board: newlib-nano on both (the emulated count runs the libc the board
#: does), with semihosting under QEMU and none (own _write) on the board
SPECS = {"mps2-an500": ("--specs=nano.specs", "--specs=rdimon.specs"),
         "stm32h7": ("--specs=nano.specs", "--specs=nosys.specs")}
#: what a build needs from the export folder
EXPORT_HEADERS = ("speechmask_frontend.h", "speechmask_gates.h", "sm_model.h", "sm_model.c",
                  "test_vectors.h")
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
M7 = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard")


@dataclass(frozen=True)
class Image:
    board: str
    elf: Path
    bin: Path | None
    sizes: dict  # text, data, bss (bytes), as binutils' size reads them

    def describe(self) -> str:
        s = self.sizes
        return (f"{self.board}: {self.elf} (text {s['text']} B, data {s['data']} B, "
                f"bss {s['bss']} B)" + (f", {self.bin}" if self.bin else ""))


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None or (cmd[0] == "make" and shutil.which(
            "gcc" if "(host)" in what else "arm-none-eabi-gcc") is None):
        raise BuildError(f"{cmd[0]}: not found (make install sets up the firmware toolchain: "
                         "gcc, gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm)")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.splitlines()
        first = next((ln for ln in lines if re.search(r"error|undefined reference|cannot find",
                                                        ln)), lines[0] if lines else "")
        raise BuildError(f"{what}: {first.strip()}")
    return done


def check_export(export: Path) -> None:
    missing = [n for n in EXPORT_HEADERS if not (export / n).is_file()]
    if missing:
        raise BuildError(f"{export}: not an export folder with test vectors (missing "
                         f"{', '.join(missing)}; run speechmask export)")


def build(export: Path, board: str, out: Path, image: str = "selftest") -> Image:
    """`image` (the self-test or the application) for `board` as a project in `out` (created):
    `src/` (the core, the board's files, the image's main and the export's generated sources and
    headers) and a `Makefile`, built with make, so that the folder rebuilds without Python
    (`make -C OUT`). Returns the image."""
    if board not in BOARDS:
        raise BuildError(f"board {board!r}: choose from {', '.join(BOARDS)}")
    if image not in IMAGES:
        raise BuildError(f"image {image!r}: choose from {', '.join(IMAGES)}")
    check_export(export)
    src = out / "src"
    if src.is_dir():  # another board's files must not be built into this one
        shutil.rmtree(src)
    src.mkdir(parents=True)
    bsp = FIRMWARE / "boards" / board.replace("-", "_")
    shared = [] if board == "host" else [*(FIRMWARE / "boards" / "cortex_m").glob("*.[ch]")]
    files = [*CORE.glob("*.[ch]"), *shared, *bsp.glob("*.[ch]"), *bsp.glob("*.ld"),
             FIRMWARE / image / f"{image}.c", *(export / n for n in EXPORT_HEADERS)]
    for f in files:
        shutil.copyfile(f, src / f.name)
    (out / "Makefile").write_text(makefile(board, bsp.name, image))
    _run(["make", "-s", "-C", str(out)], f"make ({board})")
    if board == "host":
        return Image(board, out / image, None, _sizes("size", out / image))
    return Image(board, out / f"{image}.elf", out / f"{image}.bin",
                 _sizes("arm-none-eabi-size", out / f"{image}.elf"))


def makefile(board: str, bsp: str, image: str = "selftest") -> str:
    """The Makefile of a build folder: every `src/*.c` into the image."""
    head = (f"# Generated by speechmask firmware build; `make` rebuilds the {image} from src/.\n"
            "SRCS := $(wildcard src/*.c)\nDEPS := $(wildcard src/*.h) $(wildcard src/*.ld)\n")
    if board == "host":
        return head + (f"CC ?= gcc\nCFLAGS := {' '.join(WARNINGS)} -pedantic -O2 -Isrc\n\n"
                       f"{image}: $(SRCS) $(DEPS)\n\t$(CC) $(CFLAGS) -o $@ $(SRCS) -lm\n")
    defines = " -DSM_BOARD_FLASH_REGION" if board == "stm32h7" else ""
    return head + (
        "CC := arm-none-eabi-gcc\n"
        f"CFLAGS := {' '.join(WARNINGS)} {' '.join(M7)} -O2 -Isrc{defines}\n"
        f"LDFLAGS := {' '.join(SPECS[board])} -T src/{bsp}.ld\n\n"
        f"all: {image}.bin\n\n"
        f"{image}.elf: $(SRCS) $(DEPS)\n\t$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(SRCS) -lm\n\n"
        f"{image}.bin: {image}.elf\n\tarm-none-eabi-objcopy -O binary $< $@\n")


def _sizes(tool: str, elf: Path) -> dict:
    """Berkeley format: text (code + constants), data (initialised RAM), bss (zeroed RAM)."""
    line = _run([tool, "-B", str(elf)], tool).stdout.splitlines()[-1]
    text, data, bss = (int(v) for v in re.split(r"\s+", line.strip())[:3])
    return {"text": text, "data": data, "bss": bss}


def run(image: Image, timeout: float = 120.0, count: bool = False) -> subprocess.CompletedProcess:
    """Run the self-test where it runs without a board; its exit code is 0 only if every output
    matched. `count`: QEMU with `-icount shift=0`, one nanosecond of virtual time per
    instruction, so that the board's counter counts instructions (boards/mps2_an500/board.c)."""
    if image.board == "host":
        cmd = [str(image.elf)]
    elif image.board == "stm32h7":
        raise BuildError(f"{image.elf}: an STM32H7 image runs on the board (its self-test "
                         "prints on the ST-LINK virtual COM port at 115200 8N1); --run needs "
                         "--board host or mps2-an500")
    else:
        cmd = ["qemu-system-arm", "-M", "mps2-an500", "-nographic", "-semihosting",
               "-monitor", "none", *(["-icount", "shift=0"] if count else []),
               "-kernel", str(image.elf)]
        if shutil.which(cmd[0]) is None:
            raise BuildError("qemu-system-arm: not found (make install sets it up)")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{image.elf}: no exit within {timeout:g} s under {cmd[0]}") from None
