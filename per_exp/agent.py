"""Double DQN: the TD target, the IS-weighted Huber loss, and the agent that uses them.

The math is in pure functions (`double_dqn_targets`, `weighted_huber`) that
unit tests pin on small fixed inputs; `DDQNAgent` only wires them to networks
and an optimiser.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from per_exp.config import NetworkConfig
from per_exp.networks import build_network
from per_exp.replay import Batch


def double_dqn_targets(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
) -> torch.Tensor:
    """y = r + gamma * (1 - done) * Q_target(s', argmax_a Q_online(s', a)).

    The online network picks the action and the target network values it
    (van Hasselt et al. 2016), which removes DQN's max-operator bias.
    """
    a_star = next_q_online.argmax(dim=1, keepdim=True)
    next_v = next_q_target.gather(1, a_star).squeeze(1)
    return rewards + gamma * (1.0 - dones) * next_v


def weighted_huber(q_sa: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_i w_i * Huber(q_i - y_i); with w = 1 it is the seed's smooth_l1_loss."""
    per_item = F.smooth_l1_loss(q_sa, targets, reduction="none")
    return (weights * per_item).mean()


class DDQNAgent:
    def __init__(
        self,
        net_cfg: NetworkConfig,
        obs_dim: int,
        n_actions: int,
        lr: float,
        gamma: float,
        copy_at_start: bool,
        rng: np.random.Generator,
    ):
        self.n_actions = n_actions
        self.gamma = gamma
        self.rng = rng
        self.online = build_network(net_cfg, obs_dim, n_actions)
        if copy_at_start:
            self.target = copy.deepcopy(self.online)
        else:  # the seed builds the target from its own random init
            self.target = build_network(net_cfg, obs_dim, n_actions)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=lr)

    def act(self, state: np.ndarray, epsilon: float) -> int:
        # Same comparison as the seed: greedy when epsilon < u.
        if epsilon < self.rng.random():
            with torch.no_grad():
                q = self.online(torch.from_numpy(np.asarray(state, dtype=np.float32)).unsqueeze(0))
            return int(q.argmax(dim=1).item())
        return int(self.rng.integers(self.n_actions))

    def _targets(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Q(s, a) with grad, and the detached double-DQN target."""
        n = len(b.actions)
        s = torch.from_numpy(b.states)
        s2 = torch.from_numpy(b.next_states)
        # One online forward over states and next states together.
        q_all = self.online(torch.cat([s, s2], dim=0))
        q, next_q_online = q_all[:n], q_all[n:].detach()
        with torch.no_grad():
            next_q_target = self.target(s2)
        q_sa = q.gather(1, torch.from_numpy(b.actions).unsqueeze(1)).squeeze(1)
        y = double_dqn_targets(
            torch.from_numpy(b.rewards), torch.from_numpy(b.dones), self.gamma, next_q_online, next_q_target
        )
        return q_sa, y

    def update(self, b: Batch, weights: np.ndarray) -> tuple[float, np.ndarray]:
        """One gradient step; returns the loss and the batch's TD errors (y - Q)."""
        q_sa, y = self._targets(b)
        loss = weighted_huber(q_sa, y, torch.from_numpy(np.asarray(weights, dtype=np.float32)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        td = (y - q_sa.detach()).numpy()
        return float(loss.item()), td

    @torch.no_grad()
    def td_errors(self, b: Batch) -> np.ndarray:
        q_sa, y = self._targets(b)
        return (y - q_sa).numpy()

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def state_dict(self) -> dict:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, s: dict) -> None:
        self.online.load_state_dict(s["online"])
        self.target.load_state_dict(s["target"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.rng.bit_generator.state = s["rng"]
