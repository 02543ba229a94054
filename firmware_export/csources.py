"""The firmware's C sources: the core files shipped in `firmware_export/firmware/core/` (the same
for every export; their constants and tables come from the generated headers) and the host
build the tests use to check them against the Python references.

The core is plain C99 with no allocation and no dependency beyond `<stdint.h>`/`<string.h>`:
`sm_frontend` (the fixed-point log-mel front-end, `speechmask.features_int`), `sm_send` (the
send steps, `speechmask.device.send`), `sm_kernels` (the int8 operators the generated model,
`sm_model.c` from `codegen.py`, calls) and `sm_device` (the whole streaming job: PCM in, gates
and sent features out)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from speechmask.errors import SpeechmaskError

CORE = Path(__file__).parent / "firmware" / "core"
#: core sources copied into every export (`speechmask export`), in build order
CORE_FILES = ("sm_board.h", "sm_dsp.h", "sm_frontend.h", "sm_frontend.c", "sm_send.h", "sm_send.c",
              "sm_kernels.h", "sm_kernels.c", "sm_device.h", "sm_device.c", "sm_proto.h",
              "sm_proto.c")
HOST_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")


class BuildError(SpeechmaskError):
    """A C build failed: the compiler's first error line, named with the command."""


def core_sources() -> dict[str, bytes]:
    """{file name: bytes} of the core sources."""
    return {name: (CORE / name).read_bytes() for name in CORE_FILES}


def build_host_library(src: Path, out: Path, sources: tuple[str, ...] = ("sm_frontend.c",
                                                                          "sm_send.c"),
                       cc: str = "gcc") -> Path:
    """Compile `sources` in `src` (beside the generated headers) into a shared library `out` for
    ctypes (the tests' view of the C). Raises BuildError with the compiler's message."""
    if shutil.which(cc) is None:
        raise BuildError(f"{cc}: not found (install Debian's gcc)")
    sources = [str(src / n) for n in sources]
    cmd = [cc, *HOST_FLAGS, "-shared", "-fPIC", "-I", str(src), "-o", str(out), *sources]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        first = next((ln for ln in run.stderr.splitlines() if "error" in ln), run.stderr.strip())
        raise BuildError(f"{' '.join(cmd[:1] + cmd[-len(sources):])}: {first}")
    return out
