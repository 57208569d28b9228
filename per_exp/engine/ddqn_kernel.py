"""The double-DQN math over a leading slot axis: greedy actions, one update per slot, TD errors.

K independent runs ("slots") each own a row of every array: flat float32
parameters ``theta[k]`` in ``QNetwork.parameters()`` order (body weights and
biases, advantage head, value head), the target's ``theta_t[k]``, Adam's
moments and step. One call updates every slot whose mask is set.

Why this shape (scripts/bench_kernels.py has the measurements): the network
is 4-32-32-32 with batch 32, so an update is a dozen products of ~32x32x32.
Hand-written numba loops over them reach 7-20 GFLOP/s (an axpy form stores
and reloads its accumulator row every step; a dot-product form pays a
horizontal sum per output); OpenBLAS's SGEMM, called from numba through
``np.dot(a, b, out)``, does the same products at ~3-8x that. So the matrix
products go to BLAS one slot at a time and everything between them (bias,
ReLU, dueling head, Huber loss, Adam) is one fused numba loop, with no
temporaries. Slots run in parallel (``prange``), each on its own thread-local
workspace.

Per-run identity: a slot's arithmetic is the same function on its own
arrays whatever K is and whichever slots run beside it. Nothing here sums
across slots, no loop over the slot axis is vectorised (so no slot lands in
a SIMD remainder loop), and the BLAS products have the run's own shapes
(batch, hidden), never a K-dependent one. ``fastmath`` (reassociation,
FMA contraction) is therefore safe: it changes rounding against the torch
reference (tested to a tolerance), never between two placements of a run.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from per_exp.engine import pcg

# Reassociation vectorises the short dot products; contraction fuses FMAs; no
# no-NaN/no-inf assumptions, so a diverging run still shows NaN.
_FM = {"reassoc", "contract"}


@njit(cache=True, nogil=True)
def n_params(obs_dim: int, hidden: int, layers: int, n_actions: int, dueling: bool) -> int:
    p = hidden * obs_dim + hidden + (layers - 1) * (hidden * hidden + hidden)
    return p + n_actions * hidden + n_actions + ((hidden + 1) if dueling else 0)


# ----------------------------------------------------------------------------- forward
# Activations are feature-major, (features, rows): a layer is W @ X with torch's (fan_out, fan_in)
# weights and both operands C-contiguous, the one operand order for which OpenBLAS's small-matrix
# SGEMM path is taken (a transposed operand was 3x slower at 32x32x32, bench_kernels.py).
@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def _dense(theta, w_off, fan_in, fan_out, inp, out, relu):  # pragma: no cover - compiled
    """out = act(W @ inp + b) for inp (fan_in, n), out (fan_out, n); W is theta[w_off:] as (fan_out, fan_in)."""
    w = theta[w_off : w_off + fan_out * fan_in].reshape((fan_out, fan_in))
    b_off = w_off + fan_out * fan_in
    np.dot(w, inp, out)
    n = inp.shape[1]
    for o in range(fan_out):
        bo = theta[b_off + o]
        for i in range(n):
            z = out[o, i] + bo
            out[o, i] = z if (z > 0.0 or not relu) else 0.0


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def _heads(theta, a_off, hidden, n_actions, dueling, h, q, v):  # pragma: no cover - compiled
    """q (n_actions, n) from the top activations h (hidden, n): A = Wa h + ba; dueling: V + A - mean(A)."""
    n = h.shape[1]
    for j in range(n_actions):
        bj = theta[a_off + n_actions * hidden + j]
        for i in range(n):
            q[j, i] = bj
        for k in range(hidden):
            wjk = theta[a_off + j * hidden + k]
            for i in range(n):
                q[j, i] += wjk * h[k, i]
    if dueling:
        v_off = a_off + n_actions * hidden + n_actions
        bv = theta[v_off + hidden]
        for i in range(n):
            v[i] = bv
        for k in range(hidden):
            wk = theta[v_off + k]
            for i in range(n):
                v[i] += wk * h[k, i]
        inv = np.float32(1.0 / n_actions)
        for i in range(n):
            mean_a = np.float32(0.0)
            for j in range(n_actions):
                mean_a += q[j, i]
            mean_a *= inv
            for j in range(n_actions):
                q[j, i] = v[i] + q[j, i] - mean_a


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def forward(theta, x, obs_dim, hidden, layers, n_actions, dueling, hs, q, v):  # pragma: no cover - compiled
    """Q-values of the columns of x (obs_dim, n) into q (n_actions, n); hs[l] (hidden, n) gets layer l's activations."""
    off = 0
    for layer in range(layers):
        fan_in = obs_dim if layer == 0 else hidden
        _dense(theta, off, fan_in, hidden, x if layer == 0 else hs[layer - 1], hs[layer], True)
        off += hidden * fan_in + hidden
    _heads(theta, off, hidden, n_actions, dueling, hs[layers - 1], q, v)


# ----------------------------------------------------------------------------- acting
@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def _greedy_one(theta, obs, obs_dim, hidden, layers, n_actions, dueling, h_a, h_b, qrow):  # pragma: no cover
    """argmax_a Q(obs, a) for one observation, first index on ties (as torch.argmax); dot-product form."""
    off = 0
    src = h_a
    for layer in range(layers):
        fan_in = obs_dim if layer == 0 else hidden
        dst = h_b if layer % 2 == 0 else h_a
        b_off = off + hidden * fan_in
        for o in range(hidden):
            s = theta[b_off + o]
            if layer == 0:
                for k in range(fan_in):
                    s += obs[k] * theta[off + o * fan_in + k]
            else:
                for k in range(fan_in):
                    s += src[k] * theta[off + o * fan_in + k]
            dst[o] = s if s > 0.0 else 0.0
        src = dst
        off = b_off + hidden
    mean_a = np.float32(0.0)
    for j in range(n_actions):
        s = theta[off + n_actions * hidden + j]
        for k in range(hidden):
            s += src[k] * theta[off + j * hidden + k]
        qrow[j] = s
        mean_a += s
    if dueling:
        v_off = off + n_actions * hidden + n_actions
        mean_a /= n_actions
        v = theta[v_off + hidden]
        for k in range(hidden):
            v += src[k] * theta[v_off + k]
        for j in range(n_actions):
            qrow[j] = v + qrow[j] - mean_a
    best = 0
    for j in range(1, n_actions):
        if qrow[j] > qrow[best]:
            best = j
    return best


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def greedy(theta, obs, layout):  # pragma: no cover - compiled
    """argmax_a Q(obs, a) of one network row, drawing nothing (evaluation episodes); the same argmax as `act`."""
    obs_dim, hidden, layers, n_actions, dueling = layout[0], layout[1], layout[2], layout[3], layout[4] != 0
    h_a = np.empty(hidden, np.float32)
    h_b = np.empty(hidden, np.float32)
    qrow = np.empty(n_actions, np.float32)
    return _greedy_one(theta, obs, obs_dim, hidden, layers, n_actions, dueling, h_a, h_b, qrow)


@njit(cache=True, nogil=True)
def explore_one(rng, epsilon, n_actions):  # pragma: no cover - compiled
    """The epsilon-greedy draw of one step: a random action, or -1 for "act greedily".

    The seed's comparison and draws: greedy when epsilon < u for u = rng.random(),
    else rng.integers(n_actions), both from the slot's own stream.
    """
    if epsilon < pcg.next_double(rng):
        return -1
    return pcg.bounded(rng, n_actions - 1)


@njit(cache=True, nogil=True)
def explore(rng, epsilon, mask, n_actions, out):  # pragma: no cover - compiled
    """explore_one for every slot with mask; out[k] = -1 where the slot acts greedily."""
    for k in range(rng.shape[0]):
        if mask[k]:
            out[k] = explore_one(rng[k], epsilon[k], n_actions)


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def act(theta, obs, rng, epsilon, mask, layout, out):  # pragma: no cover - compiled
    """Epsilon-greedy actions of every slot with mask: explore_one, then the online argmax where it says so."""
    obs_dim, hidden, layers, n_actions, dueling = layout[0], layout[1], layout[2], layout[3], layout[4] != 0
    h_a = np.empty(hidden, np.float32)
    h_b = np.empty(hidden, np.float32)
    qrow = np.empty(n_actions, np.float32)
    for k in range(theta.shape[0]):
        if mask[k]:
            a = explore_one(rng[k], epsilon[k], n_actions)
            if a < 0:
                a = _greedy_one(theta[k], obs[k], obs_dim, hidden, layers, n_actions, dueling, h_a, h_b, qrow)
            out[k] = a


# ----------------------------------------------------------------------------- one update
# Every array of a call is one argument of numba's dispatcher, which costs ~0.3-0.5 us each before
# any work: the agents' four parameter rows travel as one (4, K, P) array, their hyperparameters as
# one (K, 5) array, the network layout as one int array and a thread's scratch as one flat buffer.
LAYOUT_FIELDS = ("obs_dim", "hidden", "layers", "n_actions", "dueling")
HP_FIELDS = ("lr", "gamma", "beta1", "beta2", "adam_eps")
PARAM_ROWS = ("online", "target", "exp_avg", "exp_avg_sq")


@njit(cache=True, nogil=True)
def workspace_size(layout, batch):  # pragma: no cover - compiled
    """Floats of scratch one update needs (workspace_views carves them)."""
    obs_dim, hidden, layers, n_actions, dueling = layout[0], layout[1], layout[2], layout[3], layout[4]
    p = n_params(obs_dim, hidden, layers, n_actions, dueling != 0)
    return (
        3 * obs_dim * batch
        + batch * obs_dim
        + 3 * layers * hidden * batch
        + 3 * n_actions * batch
        + 2 * batch
        + 3 * hidden * batch
        + hidden * hidden
        + n_actions * batch
        + batch
        + p
    )


@njit(cache=True, nogil=True)
def workspace_views(buf, layout, batch):  # pragma: no cover - compiled
    """The scratch arrays of one update, as views of one thread's flat buffer."""
    obs_dim, hidden, layers, n_actions, dueling = layout[0], layout[1], layout[2], layout[3], layout[4]
    b2 = 2 * batch
    o = 0
    x = buf[o : o + obs_dim * b2].reshape((obs_dim, b2))  # states then next states, feature-major
    o += obs_dim * b2
    x2 = buf[o : o + obs_dim * batch].reshape((obs_dim, batch))  # next states again, for the target pass
    o += obs_dim * batch
    xb = buf[o : o + batch * obs_dim].reshape((batch, obs_dim))  # states, batch-major (dW of layer 0)
    o += batch * obs_dim
    hs = buf[o : o + layers * hidden * b2].reshape((layers, hidden, b2))  # online activations of x
    o += layers * hidden * b2
    ht = buf[o : o + layers * hidden * batch].reshape((layers, hidden, batch))  # target activations
    o += layers * hidden * batch
    q = buf[o : o + n_actions * b2].reshape((n_actions, b2))
    o += n_actions * b2
    qt = buf[o : o + n_actions * batch].reshape((n_actions, batch))
    o += n_actions * batch
    v = buf[o : o + b2]
    o += b2
    dz = buf[o : o + hidden * batch].reshape((hidden, batch))
    o += hidden * batch
    dprev = buf[o : o + hidden * batch].reshape((hidden, batch))
    o += hidden * batch
    hb = buf[o : o + batch * hidden].reshape((batch, hidden))  # a layer's input, batch-major
    o += batch * hidden
    wt = buf[o : o + hidden * hidden].reshape((hidden, hidden))  # a layer's weights, transposed
    o += hidden * hidden
    da = buf[o : o + n_actions * batch].reshape((n_actions, batch))
    o += n_actions * batch
    g = buf[o : o + batch]
    o += batch
    grad = buf[o : o + n_params(obs_dim, hidden, layers, n_actions, dueling != 0)]
    return x, x2, xb, hs, ht, q, qt, v, dz, dprev, hb, wt, da, g, grad


def workspace(threads: int, layout: np.ndarray, batch: int) -> np.ndarray:
    """One flat float32 scratch buffer per thread (row index = numba.get_thread_id())."""
    return np.zeros((threads, int(workspace_size(layout, batch))), np.float32)


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def update_one(
    theta,
    theta_t,
    exp_avg,
    exp_avg_sq,
    step,
    lr,
    gamma,
    beta1,
    beta2,
    adam_eps,
    obs_dim,
    hidden,
    layers,
    n_actions,
    dueling,
    states,
    actions,
    rewards,
    next_states,
    dones,
    idx,
    w,
    td_out,
    x,
    x2,
    xb,
    hs,
    ht,
    q,
    qt,
    v,
    dz,
    dprev,
    hb,
    wt,
    da,
    g,
    grad,
):  # pragma: no cover - compiled
    """One double-DQN step with Adam on one slot, from its replay storage rows idx; returns the loss.

    loss = mean_i w_i * Huber(Q(s_i, a_i) - y_i),
    y_i = r_i + gamma * (1 - done_i) * Q_target(s'_i, argmax_a Q(s'_i, a)).
    Writes td_out[i] = y_i - Q(s_i, a_i); theta, the moments and step[0] change in place.
    """
    bsz = idx.shape[0]
    for i in range(bsz):
        j = idx[i]
        for c in range(obs_dim):
            s_c = states[j, c]
            x[c, i] = s_c
            xb[i, c] = s_c
            s2_c = next_states[j, c]
            x[c, bsz + i] = s2_c
            x2[c, i] = s2_c
    # one online pass over states and next states together, one target pass over next states
    forward(theta, x, obs_dim, hidden, layers, n_actions, dueling, hs, q, v)
    forward(theta_t, x2, obs_dim, hidden, layers, n_actions, dueling, ht, qt, v)

    f_gamma = np.float32(gamma)
    inv_na = np.float32(1.0 / n_actions)
    loss = 0.0
    for i in range(bsz):
        best = 0
        for j in range(1, n_actions):
            if q[j, bsz + i] > q[best, bsz + i]:
                best = j
        row = idx[i]
        a = actions[row]
        y = rewards[row] + f_gamma * (np.float32(1.0) - dones[row]) * qt[best, i]
        qa = q[a, i]
        xd = qa - y
        td_out[i] = y - qa
        ax = abs(xd)
        loss += w[i] * (0.5 * xd * xd if ax < 1.0 else ax - 0.5)
        gx = xd if ax < 1.0 else (np.float32(1.0) if xd > 0.0 else np.float32(-1.0))
        gi = w[i] * gx / np.float32(bsz)
        g[i] = gi
        # dQ_ji = g_i [j == a_i]; dueling: dA_ji = dQ_ji - g_i / n_actions (and dV_i = g_i)
        for j in range(n_actions):
            d = gi if j == a else np.float32(0.0)
            if dueling:
                d -= gi * inv_na
            da[j, i] = d
    loss /= bsz

    grad[:] = 0.0
    a_off = 0
    for layer in range(layers):
        a_off += hidden * (obs_dim if layer == 0 else hidden) + hidden
    v_off = a_off + n_actions * hidden + n_actions
    top = hs[layers - 1]
    for k in range(hidden):
        for i in range(bsz):
            hb[i, k] = top[k, i]
    # heads: dWa = dA hb, dba = sum_i dA, dwv = g hb, dbv = sum_i g; dz = Wa^T dA + wv^T g
    for j in range(n_actions):
        s_b = np.float32(0.0)
        for i in range(bsz):
            d = da[j, i]
            s_b += d
            for k in range(hidden):
                grad[a_off + j * hidden + k] += d * hb[i, k]
        grad[a_off + n_actions * hidden + j] = s_b
    if dueling:
        s_b = np.float32(0.0)
        for i in range(bsz):
            gi = g[i]
            s_b += gi
            for k in range(hidden):
                grad[v_off + k] += gi * hb[i, k]
        grad[v_off + hidden] = s_b
    for k in range(hidden):
        for i in range(bsz):
            dz[k, i] = np.float32(0.0)
        for j in range(n_actions):
            wjk = theta[a_off + j * hidden + k]
            for i in range(bsz):
                dz[k, i] += wjk * da[j, i]
        if dueling:
            wk = theta[v_off + k]
            for i in range(bsz):
                dz[k, i] += wk * g[i]
    # body, top to bottom: dz *= relu'(z); dW = dz @ inp_b; db = sum_i dz; dz_prev = W^T @ dz
    off = a_off
    for layer in range(layers - 1, -1, -1):
        fan_in = obs_dim if layer == 0 else hidden
        off -= hidden * fan_in + hidden
        b_off = off + hidden * fan_in
        h = hs[layer]
        for o in range(hidden):
            s_b = np.float32(0.0)
            for i in range(bsz):
                d = dz[o, i] if h[o, i] > 0.0 else np.float32(0.0)
                dz[o, i] = d
                s_b += d
            grad[b_off + o] = s_b
        gw = grad[off:b_off].reshape((hidden, fan_in))
        if layer == 0:
            np.dot(dz, xb, gw)
        else:
            prev = hs[layer - 1]
            for k in range(fan_in):
                for i in range(bsz):
                    hb[i, k] = prev[k, i]
            np.dot(dz, hb, gw)
            wmat = theta[off:b_off].reshape((hidden, fan_in))
            for o in range(hidden):
                for k in range(fan_in):
                    wt[k, o] = wmat[o, k]
            np.dot(wt, dz, dprev)
            dz[:, :] = dprev

    # torch.optim.Adam (no weight decay, no amsgrad): same formula and order, in float32 as torch
    step[0] += 1.0
    t = step[0]
    bc1 = np.float32(1.0 - beta1**t)
    bc2_sqrt = np.float32((1.0 - beta2**t) ** 0.5)
    step_size = np.float32(lr) / bc1
    one_m_b1 = np.float32(1.0 - beta1)
    one_m_b2 = np.float32(1.0 - beta2)
    f_b2 = np.float32(beta2)
    f_eps = np.float32(adam_eps)
    for p in range(theta.shape[0]):
        gp = grad[p]
        m = exp_avg[p] + one_m_b1 * (gp - exp_avg[p])
        vv = exp_avg_sq[p] * f_b2 + one_m_b2 * gp * gp
        exp_avg[p] = m
        exp_avg_sq[p] = vv
        theta[p] -= step_size * m / (np.sqrt(vv) / bc2_sqrt + f_eps)
    return loss


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def _update_slot(
    params, step, hp, layout, states, actions, rewards, next_states, dones, idx, w, td_out, loss_out, k, buf
):  # pragma: no cover - compiled
    x, x2, xb, hs, ht, q, qt, v, dz, dprev, hb, wt, da, g, grad = workspace_views(buf, layout, idx.shape[1])
    loss_out[k] = update_one(
        params[0, k],
        params[1, k],
        params[2, k],
        params[3, k],
        step[k : k + 1],
        hp[k, 0],
        hp[k, 1],
        hp[k, 2],
        hp[k, 3],
        hp[k, 4],
        layout[0],
        layout[1],
        layout[2],
        layout[3],
        layout[4] != 0,
        states[k],
        actions[k],
        rewards[k],
        next_states[k],
        dones[k],
        idx[k],
        w[k],
        td_out[k],
        x,
        x2,
        xb,
        hs,
        ht,
        q,
        qt,
        v,
        dz,
        dprev,
        hb,
        wt,
        da,
        g,
        grad,
    )


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def update_slots(
    params, step, hp, layout, states, actions, rewards, next_states, dones, idx, w, mask, td_out, loss_out, ws
):  # pragma: no cover - compiled
    """update_one for every slot k with mask[k], in parallel, each thread on its own scratch row of ws.

    params (4, K, P): online, target, exp_avg, exp_avg_sq rows; step (K,) float32;
    hp (K, 5): lr, gamma, beta1, beta2, adam_eps per slot; layout: LAYOUT_FIELDS.
    """
    for k in prange(params.shape[1]):
        if mask[k]:
            _update_slot(
                params,
                step,
                hp,
                layout,
                states,
                actions,
                rewards,
                next_states,
                dones,
                idx,
                w,
                td_out,
                loss_out,
                k,
                ws[numba.get_thread_id()],
            )


@njit(cache=True, nogil=True, error_model="numpy")
def update_slots_serial(
    params, step, hp, layout, states, actions, rewards, next_states, dones, idx, w, mask, td_out, loss_out, ws
):  # pragma: no cover - compiled
    """update_slots on the calling thread (no parallel region to enter: K = 1 and one-thread groups)."""
    for k in range(params.shape[1]):
        if mask[k]:
            _update_slot(
                params,
                step,
                hp,
                layout,
                states,
                actions,
                rewards,
                next_states,
                dones,
                idx,
                w,
                td_out,
                loss_out,
                k,
                ws[0],
            )


# ----------------------------------------------------------------------------- TD errors of stored rows
class RefreshWorkspace:
    """Scratch of ``td_errors``: it walks the stored rows in chunks of ``chunk`` columns."""

    def __init__(self, obs_dim: int, hidden: int, layers: int, n_actions: int, chunk: int = 256):
        f4 = np.float32
        self.x = np.empty((obs_dim, 2 * chunk), f4)
        self.x2 = np.empty((obs_dim, chunk), f4)
        self.hs = np.empty((layers, hidden, 2 * chunk), f4)
        self.ht = np.empty((layers, hidden, chunk), f4)
        self.q = np.empty((n_actions, 2 * chunk), f4)
        self.qt = np.empty((n_actions, chunk), f4)
        self.v = np.empty(2 * chunk, f4)

    def arrays(self) -> tuple:
        return (self.x, self.x2, self.hs, self.ht, self.q, self.qt, self.v)


@njit(cache=True, fastmath=_FM, nogil=True, error_model="numpy")
def td_errors(
    theta,
    theta_t,
    gamma,
    obs_dim,
    hidden,
    layers,
    n_actions,
    dueling,
    states,
    actions,
    rewards,
    next_states,
    dones,
    n,
    out,
    x,
    x2,
    hs,
    ht,
    q,
    qt,
    v,
):  # pragma: no cover - compiled
    """out[:n] = y - Q(s, a) of stored rows [0, n) with the current networks, as the update computes it."""
    chunk = x2.shape[1]
    f_gamma = np.float32(gamma)
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        # fixed-width passes (the last chunk padded with its own first row): every row's arithmetic is
        # the same whatever n is
        for i in range(chunk):
            j = start + (i if i < c else 0)
            for d in range(obs_dim):
                x[d, i] = states[j, d]
                x[d, chunk + i] = next_states[j, d]
                x2[d, i] = next_states[j, d]
        forward(theta, x, obs_dim, hidden, layers, n_actions, dueling, hs, q, v)
        forward(theta_t, x2, obs_dim, hidden, layers, n_actions, dueling, ht, qt, v)
        for i in range(c):
            best = 0
            for a in range(1, n_actions):
                if q[a, chunk + i] > q[best, chunk + i]:
                    best = a
            row = start + i
            y = rewards[row] + f_gamma * (np.float32(1.0) - dones[row]) * qt[best, i]
            out[row] = y - q[actions[row], i]
