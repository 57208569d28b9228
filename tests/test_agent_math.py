"""The update's math on small fixed inputs, against values computed by hand.

The pure functions (TD target, loss) and the whole agent update, on both
backends: a 1-1-2 network with chosen weights makes Q, the double-DQN
target, the IS-weighted Huber loss, its gradient and Adam's first step
all computable on paper (worked out in the comments).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from per_exp.config import NetworkConfig
from per_exp.engine import pcg
from per_exp.engine.agent import Batch, DDQNAgent, SlotAgent, double_dqn_targets, weighted_huber
from per_exp.engine.networks import QNetwork, build_network
from per_exp.engine.storage import Storage


def test_double_dqn_target_uses_online_argmax_and_target_value():
    r = torch.tensor([1.0, 0.0, -1.0])
    done = torch.tensor([0.0, 0.0, 1.0])
    q_online = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.0, 5.0]])
    q_target = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    y = double_dqn_targets(r, done, 0.5, q_online, q_target)
    # row 0: online picks a=1 -> 20 -> 1 + 0.5*20 = 11
    # row 1: online picks a=0 -> 30 (not the target's max 40) -> 15
    # row 2: terminal -> r only
    assert y.tolist() == [11.0, 15.0, -1.0]


def test_weighted_huber_by_hand():
    q = torch.tensor([0.0, 0.0, 0.0, 1.0])
    y = torch.tensor([0.5, 2.0, -3.0, 1.0])
    w = torch.tensor([1.0, 0.5, 2.0, 7.0])
    # Huber(0.5) = 0.125 (quadratic), Huber(2) = 1.5, Huber(3) = 2.5 (linear), Huber(0) = 0
    # weighted: 0.125 + 0.75 + 5.0 + 0 = 5.875, mean over 4
    assert weighted_huber(q, y, w).item() == pytest.approx(5.875 / 4)


def test_weighted_huber_with_unit_weights_is_smooth_l1():
    g = torch.Generator().manual_seed(0)
    q, y = torch.randn(16, generator=g) * 3, torch.randn(16, generator=g) * 3
    ref = torch.nn.functional.smooth_l1_loss(q, y)
    assert weighted_huber(q, y, torch.ones(16)).item() == pytest.approx(ref.item())


def test_dueling_head_is_value_plus_centred_advantage():
    net = QNetwork(obs_dim=1, n_actions=2, hidden=1, layers=1, dueling=True)
    with torch.no_grad():
        net.body[0].weight.fill_(1.0)
        net.body[0].bias.fill_(0.0)
        net.adv.weight.copy_(torch.tensor([[1.0], [3.0]]))
        net.adv.bias.zero_()
        net.value.weight.fill_(10.0)
        net.value.bias.fill_(1.0)
    # x=2: h=2, A=[2, 6], mean A=4, V=21 -> Q = 21 + [2, 6] - 4 = [19, 23]
    assert net(torch.tensor([[2.0]])).tolist() == [[19.0, 23.0]]
    # x=-1: ReLU gives h=0: A=[0, 0], V=1
    assert net(torch.tensor([[-1.0]])).tolist() == [[1.0, 1.0]]


class _Fused:
    """The fused kernels (a SlotAgent of one slot) behind DDQNAgent's face, for the by-hand checks."""

    def __init__(self, ref: DDQNAgent, net: NetworkConfig, lr: float):
        self.slots = SlotAgent(1, net, 1, 2, batch=2, backend="fused")
        self.slots.theta[0] = torch.cat([p.detach().reshape(-1) for p in ref.online.parameters()]).numpy()
        self.slots.theta_t[0] = torch.cat([p.detach().reshape(-1) for p in ref.target.parameters()]).numpy()
        self.slots.lr[0], self.slots.gamma[0] = lr, ref.gamma
        self.slots.rng[0] = pcg.stream(1)  # its first draws are > 0: epsilon 0 acts greedily
        self.online, self.target = build_network(net, 1, 2), build_network(net, 1, 2)
        off, self.optimizer = 0, type("Adam", (), {"state": {}})()
        for p, pt in zip(self.online.parameters(), self.target.parameters()):  # views of the slot's rows
            n = p.numel()
            p.data = torch.from_numpy(self.slots.theta[0, off : off + n]).view_as(p)
            pt.data = torch.from_numpy(self.slots.theta_t[0, off : off + n]).view_as(pt)
            self.optimizer.state[p] = {
                "exp_avg": torch.from_numpy(self.slots.exp_avg[0, off : off + n]).view_as(p),
                "exp_avg_sq": torch.from_numpy(self.slots.exp_avg_sq[0, off : off + n]).view_as(p),
                "step": torch.from_numpy(self.slots.step[0:1]).view(()),
            }
            off += n

    def _storage(self, b: Batch) -> Storage:
        st = Storage(1, len(b.actions), b.states.shape[1])
        st.states[0], st.next_states[0], st.actions[0] = b.states, b.next_states, b.actions
        st.rewards[0], st.dones[0], st.size[0] = b.rewards, b.dones, len(b.actions)
        return st

    def update(self, b: Batch, w: np.ndarray) -> tuple[float, np.ndarray]:
        n = len(b.actions)
        td, loss = np.zeros((1, n), np.float32), np.zeros(1)
        self.slots.update(self._storage(b), np.arange(n)[None], w[None], np.ones(1, bool), td, loss)
        return float(loss[0]), td[0]

    def td_errors(self, b: Batch) -> np.ndarray:
        return self.slots.td_errors(0, self._storage(b))

    def act(self, state: np.ndarray, epsilon: float) -> int:
        out = np.zeros(1, np.int64)
        self.slots.act(state[None], np.array([epsilon]), np.ones(1, bool), out)
        return int(out[0])


def _hand_agent(backend: str, lr: float = 0.01):
    """1-1-2 plain network: h = relu(x), Q(x) = [x, 2x] online and [3x, x] target (for x > 0)."""
    net = NetworkConfig(name="mlp", hidden=1, layers=1)
    a = DDQNAgent(net, 1, 2, lr, 0.5, False, np.random.default_rng(0))
    with torch.no_grad():
        for q, head in ((a.online, [[1.0], [2.0]]), (a.target, [[3.0], [1.0]])):
            q.body[0].weight.fill_(1.0)
            q.body[0].bias.zero_()
            q.adv.weight.copy_(torch.tensor(head))
            q.adv.bias.zero_()
    return a if backend == "torch" else _Fused(a, net, lr)


HAND_BATCH = Batch(
    states=np.array([[1.0], [2.0]], dtype=np.float32),
    actions=np.array([0, 1], dtype=np.int64),
    rewards=np.array([1.0, 0.0], dtype=np.float32),
    next_states=np.array([[1.0], [3.0]], dtype=np.float32),
    dones=np.array([0.0, 1.0], dtype=np.float32),
)
HAND_WEIGHTS = np.array([1.0, 0.5], dtype=np.float32)


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_update_by_hand(backend):
    a = _hand_agent(backend, lr=0.01)
    loss, td = a.update(HAND_BATCH, HAND_WEIGHTS)
    # Row 0: Q(s=1)=[1, 2], a=0 -> q=1. Online at s'=1 is [1, 2] -> a*=1; target [3, 1] gives 1
    #        (plain DQN's max would take 3): y = 1 + 0.5*1 = 1.5, delta = y - q = 0.5.
    # Row 1: Q(s=2)=[2, 4], a=1 -> q=4; terminal -> y = 0, delta = -4.
    np.testing.assert_allclose(td, [0.5, -4.0], rtol=0, atol=1e-6)
    # loss = mean(w * Huber(q - y)) = (1 * 0.5*0.5^2 + 0.5 * (4 - 0.5)) / 2 = (0.125 + 1.75) / 2
    assert loss == pytest.approx(0.9375, abs=1e-6)
    # dL/dq = w * clip(q - y, -1, 1) / B = [1 * -0.5 / 2, 0.5 * 1 / 2] = [-0.25, 0.25]
    # adv.weight: [dq0 * h(1), dq1 * h(2)] = [-0.25, 0.5]; adv.bias: [-0.25, 0.25]
    # h: dh = [-0.25 * 1, 0.25 * 2] = [-0.25, 0.5] -> body.weight: -0.25*1 + 0.5*2 = 0.75; body.bias: 0.25
    grads = {
        "body.0.weight": [[0.75]],
        "body.0.bias": [0.25],
        "adv.weight": [[-0.25], [0.5]],
        "adv.bias": [-0.25, 0.25],
    }
    # Adam's first step: exp_avg = (1 - 0.9) g, exp_avg_sq = (1 - 0.999) g^2, and each parameter
    # moves by lr * g / |g| (bias corrections cancel), i.e. -lr * sign(g).
    start = {"body.0.weight": [[1.0]], "body.0.bias": [0.0], "adv.weight": [[1.0], [2.0]], "adv.bias": [0.0, 0.0]}
    params = dict(a.online.named_parameters())
    for name, g in grads.items():
        p = params[name]
        state = a.optimizer.state[p]
        g = torch.tensor(g)
        torch.testing.assert_close(state["exp_avg"], 0.1 * g, rtol=0, atol=1e-7)
        torch.testing.assert_close(state["exp_avg_sq"], 0.001 * g * g, rtol=1e-5, atol=1e-10)
        assert float(state["step"]) == 1.0
        torch.testing.assert_close(p.detach(), torch.tensor(start[name]) - 0.01 * torch.sign(g), rtol=0, atol=1e-6)
    # the target network is untouched by an update
    assert a.target.adv.weight.flatten().tolist() == [3.0, 1.0]


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_td_errors_match_update_before_the_step(backend):
    a = _hand_agent(backend)
    np.testing.assert_allclose(a.td_errors(HAND_BATCH), [0.5, -4.0], atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_greedy_action_is_online_argmax(backend):
    a = _hand_agent(backend)
    # epsilon 0: greedy. Q(1) = [1, 2] -> 1; Q(-1) = [0, 0] -> first index on a tie
    assert a.act(np.array([1.0], dtype=np.float32), 0.0) == 1
    assert a.act(np.array([-1.0], dtype=np.float32), 0.0) == 0
