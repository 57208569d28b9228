"""Q-networks: an MLP body with a dueling or a plain head (the seed's 4-32-32-32)."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from per_exp.config import NetworkConfig


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 32, layers: int = 3, dueling: bool = True):
        super().__init__()
        dims = [obs_dim] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in pairwise(dims):
            body += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.dueling = dueling
        self.adv = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1) if dueling else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        a = self.adv(h)
        if self.value is None:  # plain Q head
            return a
        # Subtracting the mean advantage makes V and A identifiable (Wang et al. 2016).
        return self.value(h) + a - a.mean(dim=1, keepdim=True)


def build_network(cfg: NetworkConfig, obs_dim: int, n_actions: int) -> QNetwork:
    return QNetwork(obs_dim, n_actions, cfg.hidden, cfg.layers, dueling=cfg.name == "dueling")


def flatten_parameters(net: nn.Module) -> torch.Tensor:
    """Move every parameter into one contiguous float32 vector and make the parameters views of it.

    The order is ``net.parameters()``, which `per_exp.engine.ddqn_kernel` relies on. The
    module, its state_dict and in-place `load_state_dict` keep working;
    the returned vector (and its `.numpy()` view) sees every change.
    """
    params = list(net.parameters())
    flat = torch.empty(sum(p.numel() for p in params), dtype=torch.float32)
    off = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            flat[off : off + n].copy_(p.detach().reshape(-1))
            p.data = flat[off : off + n].view_as(p)
            off += n
    return flat
