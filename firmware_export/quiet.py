"""TensorFlow's import and converter print a few hundred lines (absl logs, the SavedModel's
signature, deprecation notes) from C++ straight to the process's file descriptors 1 and 2, where
`contextlib.redirect_stdout` cannot reach them. `native_output_captured` sends both descriptors
to a temporary file for a block, and on failure prints the captured tail, so nothing a user needs
is lost and a successful export prints only its own report."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator

from speechmask.errors import SpeechmaskError

TAIL_BYTES = 8000


@contextlib.contextmanager
def native_output_captured() -> Iterator[None]:
    """Descriptors 1 and 2 to a temporary file for the block. A `SpeechmaskError` (a refusal
    with its own clear message) passes through alone; any other failure first prints the tail
    of what TensorFlow wrote."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def restore() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)

        try:
            yield
        except SpeechmaskError:
            restore()
            raise
        except BaseException:
            restore()
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - TAIL_BYTES))
            sys.stderr.write("--- TensorFlow's output before the error (tail) ---\n"
                             + log.read().decode(errors="replace") + "\n")
            raise
        else:
            restore()
