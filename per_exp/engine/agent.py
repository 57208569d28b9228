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
from per_exp.engine.networks import build_network, flatten_parameters
from per_exp.engine.replay import Batch

BACKENDS = ("fused", "torch")


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
    """Online and target Q-networks, Adam, epsilon-greedy acting.

    ``backend="torch"`` runs the update as eager autograd (the reference);
    ``backend="fused"`` runs the same math as one numba call (`per_exp.engine.ddqn_kernel`)
    on flat parameter vectors that the torch modules and Adam's state view,
    so state_dict/load_state_dict and the TD refresh stay plain torch.
    """

    def __init__(
        self,
        net_cfg: NetworkConfig,
        obs_dim: int,
        n_actions: int,
        lr: float,
        gamma: float,
        copy_at_start: bool,
        rng: np.random.Generator,
        backend: str = "torch",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"invalid config: update_backend={backend!r}; allowed: one of {', '.join(BACKENDS)}")
        self.backend = backend
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
        if backend == "fused":
            self._init_fused(net_cfg, obs_dim)

    # -- fused backend ----------------------------------------------------
    def _init_fused(self, net_cfg: NetworkConfig, obs_dim: int) -> None:
        from per_exp.engine import ddqn_kernel as fused  # numba import and JIT only when asked for

        self._fused = fused
        self._layout = (obs_dim, net_cfg.hidden, net_cfg.layers, self.n_actions, net_cfg.name == "dueling")
        self._theta = flatten_parameters(self.online)
        self._theta_t = flatten_parameters(self.target)
        self._theta_np = self._theta.numpy()
        self._theta_t_np = self._theta_t.numpy()
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("fused backend implements plain Adam only (no weight decay, amsgrad, maximize)")
        self._adam = (float(group["lr"]), float(beta1), float(beta2), float(group["eps"]))
        self._exp_avg = torch.zeros_like(self._theta)
        self._exp_avg_sq = torch.zeros_like(self._theta)
        self._step = torch.zeros((), dtype=torch.float32)
        self._bind_adam_state()
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load from numba's cache) both kernels now, on scratch copies, not mid-episode."""
        f, d = self._fused, self._layout[0]
        x = np.zeros((1, d), dtype=np.float32)
        one = np.ones(1, dtype=np.float32)
        f.greedy_action(self._theta_np, x[0], *self._layout)
        f.ddqn_adam_step(
            self._theta_np.copy(),
            self._theta_t_np.copy(),
            self._exp_avg_np.copy(),
            self._exp_avg_sq_np.copy(),
            np.zeros(1, dtype=np.float32),
            1e-3,
            0.9,
            0.999,
            1e-8,
            0.99,
            *self._layout,
            x,
            np.zeros(1, dtype=np.int64),
            one,
            x,
            one,
            one,
            np.empty(1, dtype=np.float32),
        )

    def _bind_adam_state(self) -> None:
        """Point torch's Adam state at the flat moment vectors, copying in any state it already holds.

        One shared 0-d `step` tensor serves every parameter (torch keeps one
        per parameter, all equal under plain Adam).
        """
        off = 0
        for p in self.online.parameters():
            n = p.numel()
            old = self.optimizer.state.get(p)
            if old:
                self._exp_avg[off : off + n] = old["exp_avg"].reshape(-1)
                self._exp_avg_sq[off : off + n] = old["exp_avg_sq"].reshape(-1)
                self._step.fill_(float(old["step"]))
            self.optimizer.state[p] = {
                "step": self._step,
                "exp_avg": self._exp_avg[off : off + n].view_as(p),
                "exp_avg_sq": self._exp_avg_sq[off : off + n].view_as(p),
            }
            off += n
        self._exp_avg_np = self._exp_avg.numpy()
        self._exp_avg_sq_np = self._exp_avg_sq.numpy()
        self._step_np = self._step.view(1).numpy()

    def _update_fused(self, b: Batch, weights: np.ndarray) -> tuple[float, np.ndarray]:
        lr, beta1, beta2, eps = self._adam
        td = np.empty(len(b.actions), dtype=np.float32)
        loss = self._fused.ddqn_adam_step(
            self._theta_np,
            self._theta_t_np,
            self._exp_avg_np,
            self._exp_avg_sq_np,
            self._step_np,
            lr,
            beta1,
            beta2,
            eps,
            self.gamma,
            *self._layout,
            b.states,
            b.actions,
            b.rewards,
            b.next_states,
            b.dones,
            np.asarray(weights, dtype=np.float32),
            td,
        )
        return float(loss), td

    def act(self, state: np.ndarray, epsilon: float) -> int:
        # Same comparison as the seed: greedy when epsilon < u.
        if epsilon < self.rng.random():
            if self.backend == "fused":
                return int(
                    self._fused.greedy_action(self._theta_np, np.asarray(state, dtype=np.float32), *self._layout)
                )
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
        if self.backend == "fused":
            return self._update_fused(b, weights)
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
        if self.backend == "fused":  # loading replaced Adam's state tensors: copy them into the flat vectors
            self._bind_adam_state()
        self.rng.bit_generator.state = s["rng"]
