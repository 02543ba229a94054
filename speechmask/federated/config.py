"""`FederateConfig`: what `speechmask federate` is asked for; the CLI's defaults come from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from speechmask.errors import ConfigError
from speechmask.options import check_int, check_number, option

STRATEGIES = ("fedavg", "fedprox", "fedadam")
MODES = ("backprop", "forward")


@dataclass(frozen=True)
class FederateConfig:
    clients: int = option(4, "devices (Flower SuperNodes), each holding the masked features of "
                             "its own speakers")
    rounds: int = option(10, "federated rounds")
    strategy: str = option("fedavg", "server aggregation: FedAvg, FedProx (the proximal term in "
                                     "each client's loss) or FedAdam (a server-side Adam step)",
                           choices=STRATEGIES)
    model: str = option("slu", "what is adapted: the cloud SLU model (every weight travels) or "
                                "a speech LM (a causal LM reading the masked features through the "
                                "cloud model's frozen encoder and a projector; only LoRA and "
                                "projector weights travel)",
                        choices=("slu", "lm"))
    lm_dir: str | None = option(None, "--model lm: a local causal LM folder (never a hub "
                                      "download); default: a small GPT-2 pre-trained here on "
                                      "the corpus's training text", metavar="DIR")
    lm_pretrain_steps: int = option(400, "--model lm without --lm-dir: pre-training steps of "
                                         "the small LM on the training transcripts")
    mode: str = option("backprop", "client training: backprop (AdamW on every weight) or "
                                    "forward (FwdLLM-style forward gradients, no backward pass, "
                                    "on the SLU model's attention pooling and intent layer, or "
                                    "the LM's LoRA and projector)",
                       choices=MODES)
    perturbations: int = option(8, "random directions per forward-gradient step (mode forward)")
    # 0.01: on one benchmark client's own training data, 30 steps from the clean cloud model
    # lowered its loss 0.2289 -> 0.2279 / 0.2262 / 0.2219 / 0.2180 / 0.2259 at 0.001 / 0.003 /
    # 0.01 / 0.03 / 0.05: the largest rate a factor 3 or more below one that overshoots
    forward_lr: float = option(0.01, "SGD learning rate of forward-gradient clients")
    local_steps: int = option(10, "optimiser steps per client and round")
    batch_size: int = option(16, "utterances per client step")
    lr: float = option(1e-3, "clients' AdamW learning rate")
    proximal_mu: float = option(0.01, "FedProx's proximal weight mu (fedprox only)")
    server_lr: float = option(0.01, "FedAdam's server learning rate eta (fedadam only)")
    dirichlet_alpha: float = option(0.0, "0: clients are disjoint groups of speakers; > 0: each "
                                         "intent's utterances spread over clients by "
                                         "Dirichlet(alpha) proportions (non-IID; smaller is "
                                         "more skewed)")
    secure_aggregation: bool = option(False, "Flower's SecAgg+: the server learns only the sum "
                                             "of the devices' weights (SLU model, FedAvg, "
                                             "backprop; quantized to 2^24 levels)")
    seed: int = option(0, "partitioning, batches and initialisation")

    def __post_init__(self) -> None:
        for name in ("clients", "rounds", "local_steps", "batch_size", "perturbations",
                     "lm_pretrain_steps"):
            check_int(getattr(self, name), name)
        if self.clients < 2:
            raise ConfigError(f"clients must be >= 2 (got {self.clients})", field="clients")
        if self.secure_aggregation and self.clients < 3:
            raise ConfigError("--secure-aggregation needs --clients >= 3 (SecAgg+ shares each "
                              "device's keys among the others)", field="clients")
        if self.secure_aggregation and (self.model, self.strategy, self.mode) != (
                "slu", "fedavg", "backprop"):
            raise ConfigError("--secure-aggregation runs the SLU model with FedAvg and backprop "
                              "clients (Flower's SecAgg+ workflow); drop --model, --strategy or "
                              "--mode", field="secure_aggregation")
        for name in ("lr", "server_lr", "forward_lr"):
            check_number(getattr(self, name), name, low=0, strict_low=True)
        for name in ("proximal_mu", "dirichlet_alpha"):
            check_number(getattr(self, name), name, low=0)

    def to_dict(self) -> dict:
        return asdict(self)
