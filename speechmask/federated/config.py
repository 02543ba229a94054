"""`FederateConfig`: what `speechmask federate` is asked for; the CLI's defaults come from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from speechmask.errors import ConfigError
from speechmask.options import check_int, option

STRATEGIES = ("fedavg", "fedprox", "fedadam")


@dataclass(frozen=True)
class FederateConfig:
    clients: int = option(4, "devices (Flower SuperNodes), each holding the masked features of "
                             "its own speakers")
    rounds: int = option(10, "federated rounds")
    strategy: str = option("fedavg", "server aggregation: FedAvg, FedProx (the proximal term in "
                                     "each client's loss) or FedAdam (a server-side Adam step)",
                           choices=STRATEGIES)
    local_steps: int = option(10, "optimiser steps per client and round")
    batch_size: int = option(16, "utterances per client step")
    lr: float = option(1e-3, "clients' AdamW learning rate")
    proximal_mu: float = option(0.01, "FedProx's proximal weight mu (fedprox only)")
    server_lr: float = option(0.01, "FedAdam's server learning rate eta (fedadam only)")
    dirichlet_alpha: float = option(0.0, "0: clients are disjoint groups of speakers; > 0: each "
                                         "intent's utterances spread over clients by "
                                         "Dirichlet(alpha) proportions (non-IID; smaller is "
                                         "more skewed)")
    seed: int = option(0, "partitioning, batches and initialisation")

    def __post_init__(self) -> None:
        for name in ("clients", "rounds", "local_steps", "batch_size"):
            check_int(getattr(self, name), name)
        if self.clients < 2:
            raise ConfigError(f"clients must be >= 2 (got {self.clients})", field="clients")
        for name in ("lr", "server_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 (got {getattr(self, name)})", field=name)
        for name in ("proximal_mu", "dirichlet_alpha"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})", field=name)

    def to_dict(self) -> dict:
        return asdict(self)
