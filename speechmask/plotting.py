"""Figures: log-mel spectrograms of utterances (matplotlib, Agg, written atomically)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .atomic import atomic_output


def save_figure(fig, out: Path) -> None:
    """Save as PNG via a temp file + rename, so a crash never leaves half an image."""
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_utterances(items: list[tuple[str, Path, dict | None]], out: Path, *,
                    integer: bool = False) -> None:
    """One log-mel panel per (title, audio path, manifest row); entity words listed in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .audio import read_audio, to_pcm16
    from .features import FrontendConfig, log_mel_numpy
    from .features_int import dequantize, log_mel_int

    cfg = FrontendConfig()
    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(items):]:
        ax.axis("off")
    for ax, (title, path, row) in zip(axes.flat, items):
        wave = read_audio(path)
        feats = (dequantize(log_mel_int(to_pcm16(wave), cfg), cfg) if integer
                 else log_mel_numpy(wave, cfg))
        extent = (0, feats.shape[0] / cfg.frames_per_second, 0, cfg.n_mels)
        im = ax.imshow(feats.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                       vmin=np.log(cfg.log_floor), vmax=max(float(feats.max()), -5))
        if row and row.get("entities"):
            title += "\n[" + ", ".join(f"{e['type']}: {e['text']}" for e in row["entities"])[:50] + "]"
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("mel band", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="ln mel energy")
    fig.suptitle(("integer (firmware)" if integer else "float") + " log-mel front-end",
                 fontsize=9)
    save_figure(fig, out)
    plt.close(fig)


def plot_mask(result, cfg, out: Path, title: str = "") -> None:
    """Two panels: the clean log-mel with closed gates shaded, and what is sent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fe = cfg.frontend
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, layout="constrained")
    seconds = result.features.shape[0] / fe.frames_per_second
    extent = (0, seconds, 0, fe.n_mels)
    vmin, vmax = np.log(fe.log_floor), max(float(result.features.max()), -5)
    top.imshow(result.features.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
               vmin=vmin, vmax=vmax)
    seg_s = cfg.gate.segment_ms / 1000
    for s, row in enumerate(result.gates):
        for g, (lo, hi) in enumerate(cfg.gate.band_edges(fe.n_mels)):
            if not row[g]:
                top.add_patch(Rectangle((s * seg_s, lo), seg_s, hi - lo, facecolor="cyan",
                                        alpha=0.35, edgecolor="none"))
    top.set_title(f"{title}\nclean log-mel; shaded = withheld ({100 * (1 - result.open_fraction):.0f}"
                  f" % of {len(result.gates)} segments of {cfg.gate.segment_ms:g} ms)", fontsize=9)
    bottom.imshow(result.masked_features.T, origin="lower", aspect="auto", extent=extent,
                  cmap="magma", vmin=vmin, vmax=vmax)
    bottom.set_title("sent to the cloud (masked features)", fontsize=9)
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.set_ylabel("mel band")
    save_figure(fig, out)
    plt.close(fig)
