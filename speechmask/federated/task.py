"""The cloud SLU model on one device's masked features: local training (backprop; FedProx's
proximal term when the server sends `proximal-mu`), evaluation, and the model as arrays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from speechmask.models.gates import floor_value
from speechmask.models.slu import SLUConfig, SLUModel
from speechmask.train.data import pad_batch

from .data import ClientData


def make_model(slu_config: dict, state: dict | None = None) -> SLUModel:
    model = SLUModel(SLUConfig.from_dict(slu_config))
    if state is not None:
        model.load_state_dict(state)
    return model


def state_arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_arrays(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()})


def _batch(model: SLUModel, data: ClientData, rows: np.ndarray):
    x, lengths = pad_batch([data.features[i] for i in rows], floor_value(model.cfg.frontend))
    return x, lengths, torch.as_tensor(data.labels[rows])


def train_local(model: SLUModel, data: ClientData, *, steps: int, batch_size: int, lr: float,
                seed: int, proximal_mu: float = 0.0) -> dict[str, float]:
    """`steps` AdamW steps on random batches of the client's utterances; with `proximal_mu`,
    FedProx's term mu/2 * ||w - w_global||^2 against the weights the round started from.
    Returns the mean loss and the number of examples seen."""
    global_params = [p.detach().clone() for p in model.parameters()] if proximal_mu else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    model.train()
    losses = []
    for _ in range(steps):
        rows = rng.choice(len(data.labels), size=min(batch_size, len(data.labels)),
                          replace=False)
        x, lengths, y = _batch(model, data, rows)
        loss = F.cross_entropy(model(x, lengths), y, label_smoothing=0.05)
        if global_params is not None:
            loss = loss + proximal_mu / 2 * sum(((p - g) ** 2).sum() for p, g in
                                                zip(model.parameters(), global_params))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(float(loss.detach()))
    return {"train-loss": float(np.mean(losses)), "num-examples": steps * min(batch_size,
                                                                             len(data.labels))}


@torch.no_grad()
def accuracy(model: SLUModel, data: ClientData, batch: int = 64) -> float:
    model.eval()
    correct = 0
    for s in range(0, len(data.labels), batch):
        x, lengths, y = _batch(model, data, np.arange(s, min(s + batch, len(data.labels))))
        correct += int((model(x, lengths).argmax(-1) == y).sum())
    return correct / max(1, len(data.labels))


def peak_memory_bytes() -> int:
    """This process's peak resident memory (Linux ru_maxrss is in KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


#: what forward-gradient clients train: the attention pooling and the intent layer (2.8 k of the
#: model's 400 k weights); the rest stays the server's
FORWARD_TRAINABLE = ("attn.", "out.")


#: the prefixes of what forward-gradient clients train, by model: the SLU model's attention pooling
#: and intent layer (2.8 k of its 400 k weights; the rest stays the server's), the speech LM's
#: LoRA adapters and projector (all it trains); the server's variance check reads these arrays
FORWARD_KEYS = {"slu": FORWARD_TRAINABLE, "lm": ("lora.", "projector.")}


@torch.no_grad()
def train_forward(model: SLUModel, data: ClientData, *, steps: int, batch_size: int, lr: float,
                  seed: int, perturbations: int = 8, eps: float = 1e-3,
                  proximal_mu: float = 0.0, guide: list[torch.Tensor] | None = None,
                  candidates: int = 4) -> dict[str, float]:
    """Forward gradients (`forward_gradient_steps`) on the SLU model's head, in eval mode so
    that the passes differ only by the perturbation."""
    params = [p for n, p in model.named_parameters() if n.startswith(FORWARD_TRAINABLE)]
    model.eval()

    def loss_at(rows: np.ndarray) -> float:
        x, lengths, y = _batch(model, data, rows)
        return float(F.cross_entropy(model(x, lengths), y, label_smoothing=0.05))

    return forward_gradient_steps(params, loss_at, len(data.labels), steps=steps,
                                  batch_size=batch_size, lr=lr, seed=seed,
                                  perturbations=perturbations, eps=eps, proximal_mu=proximal_mu,
                                  guide=guide, candidates=candidates)


@torch.no_grad()
def forward_gradient_steps(params: list[torch.Tensor], loss_at, n: int, *, steps: int,
                           batch_size: int, lr: float, seed: int, perturbations: int = 8,
                           eps: float = 1e-3, proximal_mu: float = 0.0,
                           guide: list[torch.Tensor] | None = None,
                           candidates: int = 4) -> dict[str, float]:
    """FwdLLM-style forward gradients on `params` with autograd off: per step, a batch of rows
    of the `n` examples, `perturbations` random directions v, each directional derivative from
    two perturbed forward passes ((L(w + eps v) - L(w - eps v)) / 2 eps, `loss_at(rows)` being
    L), the gradient estimate their mean of d * v, then an SGD step. No activations are kept for
    a backward pass, which is where the memory goes. FedProx's term is added to the estimate
    exactly (its gradient is mu (w - w_global)).

    `guide` (the previous round's global update of `params`, in their order): FwdLLM's
    discriminative sampling, `candidates` times as many random directions drawn and the
    `perturbations` most aligned with it (largest |cosine|) kept. The metrics report the
    variance of the directional derivatives, which the server watches (`VarianceCheck`)."""
    start = [p.clone() for p in params] if proximal_mu else None
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    losses, slopes = [], []
    for _ in range(steps):
        rows = rng.choice(n, size=min(batch_size, n), replace=False)
        grads = [torch.zeros_like(p) for p in params]
        base = 0.0
        for v in _directions(params, g, perturbations, guide, candidates):
            for p, d in zip(params, v):
                p.add_(d, alpha=eps)
            plus = loss_at(rows)
            for p, d in zip(params, v):
                p.add_(d, alpha=-2 * eps)
            minus = loss_at(rows)
            for p, d in zip(params, v):
                p.add_(d, alpha=eps)
            slope = (plus - minus) / (2 * eps)
            slopes.append(slope)
            base += (plus + minus) / 2
            for gr, d in zip(grads, v):
                gr.add_(d, alpha=slope / perturbations)
        if start is not None:
            for gr, p, s in zip(grads, params, start):
                gr.add_(p - s, alpha=proximal_mu)
        for p, gr in zip(params, grads):
            p.add_(gr, alpha=-lr)
        losses.append(base / perturbations)
    return {"train-loss": float(np.mean(losses)), "slope-variance": float(np.var(slopes)),
            "num-examples": steps * min(batch_size, n)}


def _directions(params, g: torch.Generator, k: int, guide, candidates: int):
    """`k` random directions; with `guide`, the k most aligned of candidates * k."""
    if guide is None:
        return [[torch.randn(p.shape, generator=g) for p in params] for _ in range(k)]
    flat_guide = torch.cat([t.reshape(-1) for t in guide])
    pool = [[torch.randn(p.shape, generator=g) for p in params] for _ in range(candidates * k)]
    cos = [abs(float(F.cosine_similarity(torch.cat([t.reshape(-1) for t in v]), flat_guide,
                                         dim=0))) for v in pool]
    return [pool[i] for i in np.argsort(cos)[::-1][:k]]


class SLUClient:
    """The cloud SLU model as a federated task: every weight travels."""

    def __init__(self, settings: dict, arrays: dict | None = None):
        self.settings = settings
        self.model = make_model(settings["slu_config"], arrays)

    def arrays(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def train(self, data: ClientData, *, seed: int, proximal_mu: float,
              perturbations: int | None = None, guide: list | None = None) -> dict[str, float]:
        s = self.settings
        common = dict(steps=s["local_steps"], batch_size=s["batch_size"], seed=seed,
                      proximal_mu=proximal_mu)
        if s.get("mode") == "forward":
            return train_forward(self.model, data, lr=s["forward_lr"],
                                 perturbations=perturbations or s["perturbations"],
                                 guide=guide, **common)
        return train_local(self.model, data, lr=s["lr"], **common)

    def accuracy(self, data: ClientData) -> float:
        return accuracy(self.model, data)

    def head(self) -> dict[str, torch.Tensor]:
        """The forward-gradient clients' trainable parameters, by name."""
        return {n: p.detach().clone() for n, p in self.model.named_parameters()
                if n.startswith(FORWARD_TRAINABLE)}


def fl_task(settings: dict, arrays: dict | None = None):
    """The task a settings dict names: the SLU model (default) or the speech LM."""
    if settings.get("model") == "lm":
        from .lm import LMClient

        return LMClient(settings, arrays)
    return SLUClient(settings, arrays)
