#!/usr/bin/env bash
# One-shot set-up on Debian/Ubuntu: Debian packages, .venv, torch (CPU wheel pinned first), extras.
# Usage: scripts/setup.sh [python3]   (called by `make install`, hence by `make demo` / `make test`)
set -euo pipefail
PY=${1:-python3}
VENV=.venv
# program:Debian package (the TTS voices; the host and Cortex-M7 compilers, newlib and QEMU for
# the firmware; g++ for kenlm's source build; stm32flash, the independent bootloader client the
# serial tests flash with)
DEBS_PROGRAMS="espeak-ng:espeak-ng flite:flite gcc:gcc g++:g++ arm-none-eabi-gcc:gcc-arm-none-eabi
  qemu-system-arm:qemu-system-arm stm32flash:stm32flash"
NEWLIB=/usr/lib/arm-none-eabi/newlib/libc.a   # libnewlib-arm-none-eabi (no program to look for)

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "$PY not found; install Python >= 3.10"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PY is $("$PY" -V 2>&1); speechmask needs Python >= 3.10"

missing=""
for pair in $DEBS_PROGRAMS; do
  command -v "${pair%%:*}" >/dev/null || missing="$missing ${pair#*:}"
done
[ -e "$NEWLIB" ] || missing="$missing libnewlib-arm-none-eabi"
if [ ! -x "$VENV/bin/python" ] && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
  else die "missing Debian packages:$missing (run: sudo apt-get install -y$missing)"; fi
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade "pip>=23"
# torch first, pinned: the project's range is then already met and pip never swaps in a
# multi-GB CUDA build. Override TORCH_SPEC (e.g. a CUDA build) on a GPU machine.
$PIP install -q "${TORCH_SPEC:-torch==2.13.0}"
$PIP install -q -e ".[all]"
echo "setup: ready ($VENV, $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
