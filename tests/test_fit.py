"""The suite's training loop: early stopping on a dev loss keeps the best weights, stops once the
dev loss no longer improves, and does not change the training it interrupts."""

from __future__ import annotations

import torch
from torch import nn

from attacks.fit import EarlyStop, FitConfig, fit


def _toy() -> nn.Linear:
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    return model


def _loss(model):
    def loss(batch, g):  # pulls the weight towards 5
        return (model.weight - 5.0).pow(2).sum()
    return loss


def test_early_stopping_keeps_the_best_dev_weights_and_stops():
    model = _toy()
    dev = lambda: float((model.weight - 1.0).pow(2).sum())  # best where the weight is 1  # noqa: E731
    fit(model, _loss(model), 8, FitConfig(2000, lr=0.01), desc="toy", progress=False, dev=dev,
        stop=EarlyStop(every=5, patience=3, min_delta=0.0))
    log = model.fit_log
    assert log[-1]["step"] < 2000  # stopped early
    best = min(e["dev_loss"] for e in log)
    assert abs(float((model.weight.detach() - 1.0).pow(2).sum()) - best) < 1e-9  # the best weights kept
    assert float(model.weight.detach()) < 2.0 and not model.training


def test_evaluating_does_not_change_the_training():
    """Dev evaluations run without gradients and with the RNG restored: the same steps give the
    same weights with and without them."""
    a, b = _toy(), _toy()
    cfg = FitConfig(40, lr=0.01)
    fit(a, _loss(a), 8, cfg, desc="a", progress=False)
    draws = lambda: float(torch.rand(1)) + float((b.weight - 9).pow(2).sum())  # noqa: E731
    fit(b, _loss(b), 8, cfg, desc="b", progress=False, dev=draws,
        stop=EarlyStop(every=5, patience=1000))
    assert torch.equal(a.weight, b.weight)
