"""Fused numba kernels for the small Q-network: forward, double-DQN update and Adam in one call.

Why: at batch 32 the 4-32-32-32 network costs almost nothing to compute;
an eager PyTorch update (~30 autograd ops, each with microseconds of
dispatch) spends ~0.7 ms in overhead. One compiled call does the same math
(double-DQN target, IS-weighted Huber loss, its gradient, torch's Adam
formula) in tens of microseconds.

The parameters live in one flat float32 vector per network, in the order
of ``QNetwork.parameters()`` (body weights/biases, then advantage head,
then value head). ``networks.flatten_parameters`` makes the torch
parameters views of that vector, so the torch module, its ``state_dict``
and the optimizer state always see what these kernels write.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise the length-32 dot products; no
# no-NaN/no-inf assumptions, so a diverging run still shows NaN.
_FM = {"reassoc", "contract"}


@njit(cache=True, fastmath=_FM)
def _dense_relu(inp, w, b, out):
    """out = relu(inp @ w.T + b); w is torch's (out_features, in_features) layout."""
    n, fan_in = inp.shape
    fan_out = w.shape[0]
    for i in range(n):
        for o in range(fan_out):
            s = b[o]
            for k in range(fan_in):
                s += inp[i, k] * w[o, k]
            out[i, o] = s if s > 0.0 else 0.0


@njit(cache=True, fastmath=_FM)
def forward(theta, x, obs_dim, hidden, layers, n_actions, dueling, hs):
    """Q-values for rows of x; hs[l, i] receives layer l's post-ReLU activations of row i."""
    n = x.shape[0]
    off = 0
    for layer in range(layers):
        fan_in = obs_dim if layer == 0 else hidden
        w = theta[off : off + hidden * fan_in].reshape((hidden, fan_in))
        b = theta[off + hidden * fan_in : off + hidden * fan_in + hidden]
        _dense_relu(x if layer == 0 else hs[layer - 1], w, b, hs[layer])
        off += hidden * fan_in + hidden
    wa = theta[off : off + n_actions * hidden].reshape((n_actions, hidden))
    ba = theta[off + n_actions * hidden : off + n_actions * hidden + n_actions]
    v_off = off + n_actions * hidden + n_actions
    h = hs[layers - 1]
    q = np.empty((n, n_actions), dtype=np.float32)
    for i in range(n):
        mean_a = 0.0
        for j in range(n_actions):
            s = ba[j]
            for k in range(hidden):
                s += h[i, k] * wa[j, k]
            q[i, j] = s
            mean_a += s
        if dueling:
            mean_a /= n_actions
            v = theta[v_off + hidden]
            for k in range(hidden):
                v += h[i, k] * theta[v_off + k]
            for j in range(n_actions):
                q[i, j] = v + q[i, j] - mean_a
    return q


@njit(cache=True, fastmath=_FM)
def greedy_action(theta, state, obs_dim, hidden, layers, n_actions, dueling):
    """argmax_a Q(state, a), first index on ties (as torch.argmax)."""
    x = np.empty((1, obs_dim), dtype=np.float32)
    for k in range(obs_dim):
        x[0, k] = state[k]
    hs = np.empty((layers, 1, hidden), dtype=np.float32)
    q = forward(theta, x, obs_dim, hidden, layers, n_actions, dueling, hs)
    best = 0
    for j in range(1, n_actions):
        if q[0, j] > q[0, best]:
            best = j
    return best


@njit(cache=True, fastmath=_FM)
def ddqn_adam_step(
    theta,
    theta_target,
    exp_avg,
    exp_avg_sq,
    step,
    lr,
    beta1,
    beta2,
    adam_eps,
    gamma,
    obs_dim,
    hidden,
    layers,
    n_actions,
    dueling,
    s,
    a,
    r,
    s2,
    done,
    w,
    td_out,
):
    """One double-DQN gradient step with Adam; theta/exp_avg/exp_avg_sq/step[0] change in place.

    loss = mean_i w_i * Huber(Q(s_i, a_i) - y_i),
    y_i = r_i + gamma * (1 - done_i) * Q_target(s2_i, argmax_a Q(s2_i, a)).
    Writes td_out[i] = y_i - Q(s_i, a_i) and returns the loss.
    """
    bsz = s.shape[0]
    hs = np.empty((layers, bsz, hidden), dtype=np.float32)
    hs2 = np.empty((layers, bsz, hidden), dtype=np.float32)
    q = forward(theta, s, obs_dim, hidden, layers, n_actions, dueling, hs)
    q_next = forward(theta, s2, obs_dim, hidden, layers, n_actions, dueling, hs2)
    q_next_t = forward(theta_target, s2, obs_dim, hidden, layers, n_actions, dueling, hs2)

    # loss and dLoss/dQ(s_i, a_i)
    g = np.empty(bsz, dtype=np.float32)
    loss = 0.0
    for i in range(bsz):
        best = 0
        for j in range(1, n_actions):
            if q_next[i, j] > q_next[i, best]:
                best = j
        y = r[i] + gamma * (1.0 - done[i]) * q_next_t[i, best]
        x = q[i, a[i]] - y
        td_out[i] = y - q[i, a[i]]
        ax = abs(x)
        loss += w[i] * (0.5 * x * x if ax < 1.0 else ax - 0.5)
        gx = x if ax < 1.0 else (1.0 if x > 0.0 else -1.0)
        g[i] = w[i] * gx / bsz
    loss /= bsz

    grad = np.zeros(theta.shape[0], dtype=np.float32)
    # offsets of every layer, as in forward()
    offs = np.empty(layers + 1, dtype=np.int64)
    off = 0
    for layer in range(layers):
        offs[layer] = off
        fan_in = obs_dim if layer == 0 else hidden
        off += hidden * fan_in + hidden
    a_off = off
    offs[layers] = a_off
    v_off = a_off + n_actions * hidden + n_actions
    top = layers - 1

    # heads: dQ_ij = g_i [j == a_i]; dueling: dA_ij = dQ_ij - g_i / n_actions, dV_i = g_i
    dh = np.zeros((bsz, hidden), dtype=np.float32)
    inv_na = 1.0 / n_actions
    for i in range(bsz):
        for j in range(n_actions):
            da = g[i] if j == a[i] else 0.0
            if dueling:
                da -= g[i] * inv_na
            if da != 0.0:
                grad[a_off + n_actions * hidden + j] += da
                for k in range(hidden):
                    grad[a_off + j * hidden + k] += da * hs[top, i, k]
                    dh[i, k] += da * theta[a_off + j * hidden + k]
        if dueling:
            gi = g[i]
            grad[v_off + hidden] += gi
            for k in range(hidden):
                grad[v_off + k] += gi * hs[top, i, k]
                dh[i, k] += gi * theta[v_off + k]

    # body, top to bottom: dz = dh * relu'(z); dW = dz^T h_prev; db = sum dz; dh_prev = dz W
    for layer in range(layers - 1, -1, -1):
        fan_in = obs_dim if layer == 0 else hidden
        w_off = offs[layer]
        b_off = w_off + hidden * fan_in
        w = theta[w_off:b_off].reshape((hidden, fan_in))
        gw = grad[w_off:b_off].reshape((hidden, fan_in))
        gb = grad[b_off : b_off + hidden]
        inp = s if layer == 0 else hs[layer - 1]
        h = hs[layer]
        dprev = np.zeros((bsz, fan_in), dtype=np.float32)
        for i in range(bsz):
            for o in range(hidden):
                if h[i, o] <= 0.0:
                    continue
                dz = dh[i, o]
                gb[o] += dz
                for k in range(fan_in):
                    gw[o, k] += dz * inp[i, k]
                if layer > 0:
                    for k in range(fan_in):
                        dprev[i, k] += dz * w[o, k]
        dh = dprev

    # torch.optim.Adam (no weight decay, no amsgrad), same formula and order
    step[0] += 1.0
    t = step[0]
    bc1 = 1.0 - beta1**t
    bc2_sqrt = (1.0 - beta2**t) ** 0.5
    step_size = lr / bc1
    for p in range(theta.shape[0]):
        gp = grad[p]
        m = exp_avg[p] + (1.0 - beta1) * (gp - exp_avg[p])
        v = exp_avg_sq[p] * beta2 + (1.0 - beta2) * gp * gp
        exp_avg[p] = m
        exp_avg_sq[p] = v
        theta[p] -= step_size * m / (np.sqrt(v) / bc2_sqrt + adam_eps)
    return loss
