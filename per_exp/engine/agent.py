"""Double DQN: the TD target, the IS-weighted Huber loss, the reference agent, and the agents of K runs.

The math is in pure functions (`double_dqn_targets`, `weighted_huber`) that
unit tests pin on small fixed inputs. `DDQNAgent` wires them to torch
networks and Adam: eager autograd, the readable reference. `SlotAgent`
holds the agents of K runs as arrays and updates them with the numba
kernels of `ddqn_kernel` (``update_backend=fused``), or with one
`DDQNAgent` per slot viewing the same arrays (``update_backend=torch``);
tests hold the two to a tolerance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch
import torch.nn.functional as F

from per_exp.config import NetworkConfig
from per_exp.engine import ddqn_kernel as kern
from per_exp.engine import pcg
from per_exp.engine.networks import build_network, flatten_parameters

BACKENDS = ("fused", "torch")
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # torch.optim.Adam's defaults, which the seed uses


@dataclass
class Batch:
    states: np.ndarray  # float32 (B, obs_dim)
    actions: np.ndarray  # int64 (B,)
    rewards: np.ndarray  # float32 (B,)
    next_states: np.ndarray  # float32 (B, obs_dim)
    dones: np.ndarray  # float32 (B,): 1 where the next state is terminal (no bootstrap)


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
    """Online and target Q-networks, Adam, epsilon-greedy acting: eager torch, the reference."""

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
            return self.greedy(state)
        return int(self.rng.integers(self.n_actions))

    def greedy(self, state: np.ndarray) -> int:
        with torch.no_grad():
            q = self.online(torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32)).unsqueeze(0))
        return int(q.argmax(dim=1).item())

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


class SlotAgent:
    def __init__(
        self,
        num_slots: int,
        net: NetworkConfig,
        obs_dim: int,
        n_actions: int,
        batch: int,
        backend: str = "fused",
        threads: int = 1,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"invalid config: update_backend={backend!r}; allowed: one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.num_slots, self.obs_dim, self.n_actions, self.batch = int(num_slots), obs_dim, n_actions, batch
        self.net = net
        self.dueling = net.name == "dueling"
        self.layout = (obs_dim, net.hidden, net.layers, n_actions, self.dueling)
        self.layout_arr = np.array([obs_dim, net.hidden, net.layers, n_actions, int(self.dueling)], np.int64)
        p = kern.n_params(*self.layout)
        f4 = np.float32
        # one array per kind, rows as views: the kernels take each kind as one argument
        self.params = np.zeros((len(kern.PARAM_ROWS), num_slots, p), f4)
        self.theta, self.theta_t, self.exp_avg, self.exp_avg_sq = self.params
        self.step = np.zeros(num_slots, f4)
        self.rng = np.zeros((num_slots, pcg.STATE_WORDS), np.uint64)
        self.hp = np.zeros((num_slots, len(kern.HP_FIELDS)))
        self.lr, self.gamma, self.beta1, self.beta2, self.adam_eps = self.hp.T
        self.beta1[:], self.beta2[:], self.adam_eps[:] = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
        self.threads = max(1, int(threads))
        pool = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # numba's thread pool size
        self._ws = kern.workspace(max(self.threads, pool), self.layout_arr, batch)
        self._refresh_ws = kern.RefreshWorkspace(obs_dim, net.hidden, net.layers, n_actions).arrays()
        self._explore = np.zeros(num_slots, np.int64)
        self._torch: list[Any] = [None] * num_slots  # per-slot DDQNAgent views (torch backend)

    # -- a run enters a slot ---------------------------------------------------------------
    def init_slot(
        self, k: int, seed: int, lr: float, gamma: float, copy_at_start: bool, rng_seed: np.random.SeedSequence
    ) -> None:
        """Fresh networks and Adam state for a new run, drawn exactly as the single-run trainer drew them."""
        torch.manual_seed(seed)
        online = build_network(self.net, self.obs_dim, self.n_actions)
        # the seed builds the target from its own random init; the paper's DQN copies the online net
        target = None if copy_at_start else build_network(self.net, self.obs_dim, self.n_actions)
        self.theta[k] = flatten_parameters(online).numpy()
        self.theta_t[k] = self.theta[k] if target is None else flatten_parameters(target).numpy()
        self.exp_avg[k] = 0.0
        self.exp_avg_sq[k] = 0.0
        self.step[k] = 0.0
        self.lr[k], self.gamma[k] = lr, gamma
        pcg.from_state(np.random.PCG64(rng_seed).state, out=self.rng[k])
        self._bind(k)

    def _bind(self, k: int) -> None:
        if self.backend == "torch":
            self._torch[k] = _TorchSlot(self, k)

    # -- acting, learning -------------------------------------------------------------------
    def act(self, obs: np.ndarray, epsilon: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
        """Epsilon-greedy actions for the slots in mask (each slot draws from its own stream)."""
        if self.backend == "fused":
            kern.act(self.theta, obs, self.rng, epsilon, mask, self.layout_arr, out)
            return
        kern.explore(self.rng, epsilon, mask, self.n_actions, self._explore)
        for k in np.flatnonzero(mask & (self._explore < 0)):
            out[k] = self._torch[k].greedy(obs[k])
        take = mask & (self._explore >= 0)
        out[take] = self._explore[take]

    def greedy(self, k: int, obs: np.ndarray) -> int:
        """Slot k's greedy action for one observation; draws nothing from the slot's stream (evaluation)."""
        if self.backend == "fused":
            return int(kern.greedy(self.theta[k], np.ascontiguousarray(obs, dtype=np.float32), self.layout_arr))
        return self._torch[k].greedy(obs)

    def update(
        self, storage: Any, idx: np.ndarray, w: np.ndarray, mask: np.ndarray, td_out: np.ndarray, loss_out: np.ndarray
    ) -> None:
        """One gradient step for every slot in mask on its batch storage[k][idx[k]] with IS weights w[k]."""
        if self.backend == "torch":
            for k in np.flatnonzero(mask):
                loss_out[k], td_out[k] = self._torch[k].update(storage, k, idx[k], w[k])
            return
        # one run is one chain of updates: a parallel region only pays with a few slots per thread
        parallel = self.threads > 1 and self.num_slots >= 2 * self.threads
        fn = kern.update_slots if parallel else kern.update_slots_serial
        fn(
            self.params,
            self.step,
            self.hp,
            self.layout_arr,
            storage.states,
            storage.actions,
            storage.rewards,
            storage.next_states,
            storage.dones,
            idx,
            w,
            mask,
            td_out,
            loss_out,
            self._ws,
        )

    def td_errors(self, k: int, storage: Any) -> np.ndarray:
        """y - Q(s, a) of every transition slot k stores, with its current networks (the seed's refresh)."""
        n = int(storage.size[k])
        if self.backend == "torch":
            return self._torch[k].td_errors(storage, k, n)
        out = np.empty(n, np.float32)
        kern.td_errors(
            self.theta[k],
            self.theta_t[k],
            self.gamma[k],
            *self.layout,
            storage.states[k],
            storage.actions[k],
            storage.rewards[k],
            storage.next_states[k],
            storage.dones[k],
            n,
            out,
            *self._refresh_ws,
        )
        return out

    def sync_target(self, k: int) -> None:
        self.theta_t[k] = self.theta[k]

    # -- one slot's state: plain arrays, the same whatever K is ----------------------------
    def state_dict(self, k: int) -> dict[str, Any]:
        return {
            "online": self.theta[k].copy(),
            "target": self.theta_t[k].copy(),
            "exp_avg": self.exp_avg[k].copy(),
            "exp_avg_sq": self.exp_avg_sq[k].copy(),
            "step": float(self.step[k]),
            "rng": pcg.to_state(self.rng[k]),
        }

    def load_state_dict(self, k: int, s: dict[str, Any], lr: float, gamma: float) -> None:
        for key, arr in (
            ("online", self.theta),
            ("target", self.theta_t),
            ("exp_avg", self.exp_avg),
            ("exp_avg_sq", self.exp_avg_sq),
        ):
            got = np.asarray(s[key], dtype=np.float32)
            if got.shape != arr.shape[1:]:
                raise ValueError(
                    f"agent state {key!r} has {got.size} parameters, this network has {arr.shape[1]} "
                    f"({self.net.name}, hidden={self.net.hidden}, layers={self.net.layers})"
                )
            arr[k] = got
        self.step[k] = float(s["step"])
        self.lr[k], self.gamma[k] = lr, gamma
        pcg.from_state(s["rng"], out=self.rng[k])
        self._bind(k)

    def online_state_dict(self, k: int) -> dict[str, Any]:
        """Slot k's online network as a torch ``state_dict`` (the model artifact)."""
        net = build_network(self.net, self.obs_dim, self.n_actions)
        off = 0
        with torch.no_grad():
            for p in net.parameters():
                n = p.numel()
                p.copy_(torch.from_numpy(self.theta[k, off : off + n].copy()).view_as(p))
                off += n
        return net.state_dict()


class _TorchSlot:
    """The eager-torch reference for one slot: DDQNAgent's update on views of the slot's rows."""

    def __init__(self, agents: SlotAgent, k: int):
        self.agents, self.k = agents, k
        a = DDQNAgent(
            agents.net,
            agents.obs_dim,
            agents.n_actions,
            float(agents.lr[k]),
            float(agents.gamma[k]),
            True,
            np.random.default_rng(0),
        )
        off = 0
        moments = {}
        for p_on, p_t in zip(a.online.parameters(), a.target.parameters()):
            n = p_on.numel()
            p_on.data = torch.from_numpy(agents.theta[k, off : off + n]).view_as(p_on)
            p_t.data = torch.from_numpy(agents.theta_t[k, off : off + n]).view_as(p_t)
            moments[p_on] = (
                torch.from_numpy(agents.exp_avg[k, off : off + n]).view_as(p_on),
                torch.from_numpy(agents.exp_avg_sq[k, off : off + n]).view_as(p_on),
            )
            off += n
        for p, (m, v) in moments.items():  # Adam state as views of the rows; its own step counters
            a.optimizer.state[p] = {"step": torch.tensor(float(agents.step[k])), "exp_avg": m, "exp_avg_sq": v}
        self.agent = a

    def greedy(self, obs: np.ndarray) -> int:
        return self.agent.greedy(obs)

    def _batch(self, storage: Any, k: int, idx: np.ndarray) -> Batch:
        return Batch(
            storage.states[k][idx],
            storage.actions[k][idx],
            storage.rewards[k][idx],
            storage.next_states[k][idx],
            storage.dones[k][idx],
        )

    def update(self, storage: Any, k: int, idx: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, td = self.agent.update(self._batch(storage, k, idx), w)
        p0 = next(self.agent.online.parameters())
        self.agents.step[k] = float(self.agent.optimizer.state[p0]["step"])
        return loss, td

    def td_errors(self, storage: Any, k: int, n: int) -> np.ndarray:
        return self.agent.td_errors(self._batch(storage, k, np.arange(n)))
