"""`speechmask attack sweep`: the privacy-utility frontier over the knobs that matter, with every
baseline on the same plots and the default setting marked.

The knobs: the KL budget `gamma` (how much the mask withholds) and the switch cost (how much it
is made to withhold whole runs rather than alternate), one trained mask per pair, and the
device-side send steps (`SendConfig`: the per-band normalisation's length, the frequency
warp's range), which change what is sent of the same gates, so every send setting reuses its
mask. Each point is the suite's `speechmask` row for one (gamma, switch, norm, warp); the
baselines are run once beside them. `sweep.json` holds every point and baseline row;
`sweep.png` one panel per privacy metric, intent accuracy against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

from speechmask.models.config import SendConfig
from speechmask.options import field_default
from speechmask.train.config import ObjectiveConfig

#: the sweep's knobs: (flag, config class, field, type, help); each flag takes a list that
#: defaults to the field's default, and each value is checked by the config itself
KNOBS = (("--gammas", ObjectiveConfig, "gamma", float, "KL budgets (nats): one mask each"),
         ("--switch-costs", ObjectiveConfig, "switch_cost", float,
          "switch costs of the mask objective: one mask per gamma and cost"),
         ("--norm-frames", SendConfig, "norm_frames", int,
          "lengths of the send normalisation to try, means only as by default (0 = off)"),
         ("--warps", SendConfig, "warp_max", float,
          "ranges of the send frequency warp to try (0 = off)"))

# privacy metrics drawn, each with its axis label (higher = more private)
LEAKS = (("wer_informed", "WER, informed ASR"), ("wer_inpainting", "WER, inpainting"),
         ("entity_error_rate", "EntER"), ("eer_lazy_informed", "EER, lazy-informed"),
         ("eer_semi_informed", "EER, semi-informed"))


@dataclass(frozen=True)
class Setting:
    """One point of the sweep."""

    gamma: float
    switch_cost: float
    norm_frames: int
    warp_max: float

    @property
    def mask_label(self) -> str:
        """The trained mask's knobs (one curve per mask in the plot)."""
        return f"γ={self.gamma:g}" + (f" s{self.switch_cost:g}" if self.switch_cost else "")

    @property
    def label(self) -> str:
        return f"{self.mask_label} n{self.norm_frames} w{self.warp_max * 100:g}"

    @property
    def mask_name(self) -> str:
        return f"mask_gamma{self.gamma:g}" + (f"_switch{self.switch_cost:g}"
                                              if self.switch_cost else "") + ".pt"

    def is_default(self) -> bool:
        return (self.gamma == field_default(ObjectiveConfig, "gamma")
                and self.switch_cost == field_default(ObjectiveConfig, "switch_cost")
                and self.norm_frames == field_default(SendConfig, "norm_frames")
                and self.warp_max == field_default(SendConfig, "warp_max"))


def settings(gammas, switch_costs, norms, warps) -> list[Setting]:
    """Every combination, the mask's knobs slowest (one mask per pair, trained once)."""
    return [Setting(g, c, n, w) for g, c, n, w in product(gammas, switch_costs, norms, warps)]


def with_send(mask, setting: Setting, features: list):
    """A copy of `mask` (the same gates) that sends with `setting`'s steps, calibrated on
    `features` (the training part)."""
    from speechmask.device import send
    from speechmask.models.mask import MaskGenerator

    cfg = replace(mask.cfg, send=SendConfig(norm_frames=setting.norm_frames,
                                            warp_max=setting.warp_max))
    cfg = send.calibrate(cfg, features)
    twin = MaskGenerator(cfg)
    twin.load_state_dict(mask.state_dict())
    return twin.eval()


def plot_frontier(points: list[dict], baselines: list[dict], out: Path) -> None:
    """One panel per privacy metric: intent accuracy (y) against the metric (x) for every sweep
    point (joined per trained mask), every baseline (labelled), the default setting starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechmask.plotting import save_figure

    fig, axes = plt.subplots(1, len(LEAKS), figsize=(4 * len(LEAKS), 4), layout="constrained",
                             sharey=True)
    for ax, (key, label) in zip(axes, LEAKS):
        for b in baselines:
            v = b["metrics"].get(key)
            if v is None:
                continue
            ax.plot(v, b["metrics"]["intent_acc"], "s", color="0.45", ms=5)
            ax.annotate(b["name"], (v, b["metrics"]["intent_acc"]), fontsize=7,
                        xytext=(3, -8), textcoords="offset points", color="0.3")
        for mask in dict.fromkeys(p["mask_label"] for p in points):
            pts = [(p["metrics"][key], p["metrics"]["intent_acc"],
                    p["label"][len(mask) + 1:]) for p in points
                   if p["mask_label"] == mask and p["metrics"].get(key) is not None]
            if not pts:
                continue
            x, y, names = zip(*sorted(pts))
            ax.plot(x, y, "o-", ms=4, label=f"speechmask {mask}")
            for xi, yi, n in pts:
                ax.annotate(n, (xi, yi), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        for p in points:
            if p["default"] and p["metrics"].get(key) is not None:
                ax.plot(p["metrics"][key], p["metrics"]["intent_acc"], "*", ms=16, mfc="none",
                        mec="crimson", mew=1.5, label="default")
        ax.set_xlabel(f"{label} (higher = more private)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("intent accuracy")
    handles, names = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncol=min(6, len(handles)),
                   fontsize=8)
    save_figure(fig, out)
    plt.close(fig)
