"""On-device cost of a network: parameters, MACs per second of audio, int8 weight bytes, peak
activation bytes. Counted with forward hooks on the leaf layers, so every architecture is covered."""

from __future__ import annotations

import torch
from torch import nn


def _numel(x) -> int:
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return x.data.numel()
    return x.numel() if torch.is_tensor(x) else 0


def _macs(module: nn.Module, inputs: tuple, output) -> int:
    out = output[0] if isinstance(output, tuple) else output
    if isinstance(module, nn.Linear):
        return _numel(out) * module.in_features
    if isinstance(module, nn.Conv1d):
        return _numel(out) * (module.in_channels // module.groups) * module.kernel_size[0]
    if isinstance(module, nn.GRU):
        x = inputs[0]
        if isinstance(x, nn.utils.rnn.PackedSequence):
            steps = x.data.shape[0]  # time steps summed over the batch
        else:
            steps = x.shape[0] * x.shape[1]
        dirs = 2 if module.bidirectional else 1
        total, width = 0, module.input_size
        for _ in range(module.num_layers):
            total += dirs * steps * 3 * (width * module.hidden_size + module.hidden_size ** 2)
            width = module.hidden_size * dirs
        return total
    if isinstance(module, nn.MultiheadAttention):
        # input projections, scores and weighted sum, output projection; called functionally
        # inside the module, so its Linear children never fire their own hooks
        q = inputs[0]
        b, t, d = (q.shape if module.batch_first else (q.shape[1], q.shape[0], q.shape[2]))
        return b * (3 * t * d * d + 2 * t * t * d + t * d * d)
    return 0


def count_cost(model: nn.Module, example: torch.Tensor | tuple, seconds: float) -> dict:
    """Run `model(example)` once with hooks (`model(*example)` for a tuple). `example` holds
    `seconds` of audio (features), so MACs
    are scaled to one second; activation bytes are int8 (1 byte per value), the peak over layers of
    input + output held at once. Weights: int8 for matrices, int32 for biases.
    `model.device_parameters()`, where it exists, names the weights the device holds."""
    macs, peak = [0], [0]

    def hook(module, inputs, output):
        macs[0] += _macs(module, inputs, output)
        out = output[0] if isinstance(output, tuple) else output
        held = sum(_numel(t) for t in inputs) + _numel(out)
        if isinstance(module, nn.MultiheadAttention):  # q, k, v, output + the score matrix
            t = inputs[0].shape[1 if module.batch_first else 0]
            held += module.num_heads * t * t * (_numel(inputs[0]) // (t * module.embed_dim))
        peak[0] = max(peak[0], held)

    counted = (nn.Linear, nn.Conv1d, nn.GRU, nn.MultiheadAttention)
    leaves = [m for m in model.modules() if isinstance(m, counted)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused path skips the modules' hooks
    try:
        with torch.no_grad():
            model.eval()(*(example if isinstance(example, tuple) else (example,)))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for h in handles:
            h.remove()
    # a device part names the parameters it runs (not its model's cloud side or training heads)
    weights = list(model.device_parameters() if hasattr(model, "device_parameters")
                   else model.parameters())
    params = sum(p.numel() for p in weights)
    weight_bytes = sum(p.numel() * (1 if p.dim() > 1 else 4) for p in weights)
    return {"params": int(params), "macs_per_second": int(round(macs[0] / seconds)),
            "weight_bytes": int(weight_bytes), "activation_bytes": int(peak[0])}
