"""Per-frame level removal: a device-side step that subtracts each frame's mean over the mel bands
(in the log domain: divides the frame's band energies by their geometric mean) and adds a fixed
target, so the loudness contour of the utterance (how the level rises and falls from frame to
frame, a speaker cue the per-band normalisation keeps: it removes only what is constant over its
window) does not leave the device. What is left of each frame is its spectral shape.

    y_t[b] = x_t[b] - mean_b(x_t) + target

The step is per frame: it keeps no state, reads no other frame (causal), and is its own streaming
form. A level offset common to all bands of a frame is removed exactly: `y(x + c) == y(x)` bit
for bit in the integer path. Per band and frame it costs one addition (the sum), one subtraction
and one addition, plus one division per frame; its one constant is `target`, the training
features' mean value (`calibrate`), which keeps what is sent in the range the cloud model and the
int16 format expect.

Integer arithmetic (int16 Q`log_frac_bits` features, C's on two's complement):
    s = sum_b x[b]                         int32, |s| <= n_mels * 2**15
    m = floor((s + n // 2) / n)            rounded half up, n = n_mels
    y = sat16(x - m + target)

Half up, not half away from zero as the normalisation rounds: only a rounding that commutes with
adding an integer removes a frame's level exactly (half away from zero maps the means 0.5 and
-0.5 to 1 and -1, one apart though the frames differ by one). C computes the floor without a
branch on a shifted, non-negative sum: `(uint32_t)(s + n // 2 + n * 32768) / n - 32768`.

`remove_level_int` (numpy) is the firmware's arithmetic; `remove_level_float` (torch or numpy,
float log-mel, for training) its twin, within one LSB (the mean's rounding).
"""

from __future__ import annotations

import numpy as np


def remove_level_int(features_q: np.ndarray, target: int) -> np.ndarray:
    """int16 `(frames, n_mels)` -> int16: each frame minus its rounded band mean, plus `target`."""
    x = np.asarray(features_q)
    if x.dtype != np.int16 or x.ndim != 2:
        raise ValueError(f"expected int16 frames (k, n_mels), got {x.dtype} {x.shape}")
    n = x.shape[1]
    s = x.astype(np.int64).sum(1)
    m = (s + n // 2) // n  # numpy's // floors, as the C form on its shifted sum
    return np.clip(x.astype(np.int64) - m[:, None] + int(target), -32768, 32767).astype(np.int16)


def remove_level_float(features, target: float):
    """Float log-mel `(..., frames, n_mels)` (torch or numpy) -> the same shape: each frame minus
    its band mean, plus `target` (in the features' units)."""
    if isinstance(features, np.ndarray):
        return (features - features.mean(-1, keepdims=True) + target).astype(features.dtype)
    return features - features.mean(-1, keepdim=True) + target


def calibrate(features_q: list[np.ndarray]) -> int:
    """The target: the mean value of the training features (int16 units), rounded."""
    total = sum(int(np.asarray(f, dtype=np.int64).sum()) for f in features_q)
    count = sum(int(np.asarray(f).size) for f in features_q)
    return int(round(total / count)) if count else 0
