"""Which kernel shape runs K double-DQN updates fastest: the evidence behind per_exp/engine's kernels.

Every variant does the same work: for each of K slots (independent runs),
one double-DQN update of batch B on its own parameters (forward of s, s2
online and s2 target, IS-weighted Huber loss, backward, Adam), from
batches already gathered. Timed per slot-update, at K = 1, 8, 32, 128,
on one thread and (prange variants) on all cores:

- ``today``      numba loop over K around today's fused kernel (main's engine/ddqn_kernel.py), one slot at a time
- ``numpy_bmm``  the update as numpy matmuls batched over K (stacked (K, B, H) @ (K, H, H))
- ``slot_simd``  numba, slot axis innermost: every array is (..., K), SIMD runs across slots
- ``fm``         numba, per slot, feature-major activations (H, B): batch innermost, axpy form
- ``blas``       numba, per slot, batch-major; the matrix products through BLAS (``np.dot(a, b, out)``),
                 everything else fused loops: per_exp/engine/ddqn_kernel.py (what the engine uses)
- ``*_par``      the same with ``prange`` over slots

The matmul floor: 0.74 MFLOP per update (4-32-32-32 dueling, B = 32) at the
SGEMM rate measured here on (K*64, 32) @ (32, 32).

    python scripts/bench_kernels.py --ks 1,8,32,128 --reps 200 --json kernels.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

import per_exp  # noqa: F401  sets OpenMP's passive wait policy before numba loads libgomp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

OBS, HID, LAYERS, NA, B = 4, 32, 3, 2, 32
FM = {"reassoc", "contract"}


def n_params(obs=OBS, hid=HID, layers=LAYERS, na=NA) -> int:
    p = hid * obs + hid + (layers - 1) * (hid * hid + hid)
    return p + na * hid + na + hid + 1


def flops_per_update(obs=OBS, hid=HID, layers=LAYERS, na=NA, b=B) -> float:
    """Multiply-adds x 2: three forwards of B rows, the backward (2 products per layer but the first), Adam ignored."""
    mac_fwd = obs * hid + (layers - 1) * hid * hid + (na + 1) * hid
    mac_bwd = 2 * mac_fwd - obs * hid  # dW for every layer, dX for all but the input
    return 2.0 * b * (3 * mac_fwd + mac_bwd)


# ----------------------------------------------------------------------------- fm: per slot, feature-major
@njit(cache=True, fastmath=FM)
def _dense_fm(theta, w_off, fan_in, fan_out, inp, out, relu):
    """out[o, :] = act(b[o] + sum_k W[o, k] inp[k, :]); inp (fan_in, n), out (fan_out, n) feature-major."""
    n = inp.shape[1]
    b_off = w_off + fan_out * fan_in
    for o in range(fan_out):
        row = out[o]
        bo = theta[b_off + o]
        for i in range(n):
            row[i] = bo
        for k in range(fan_in):
            w = theta[w_off + o * fan_in + k]
            src = inp[k]
            for i in range(n):
                row[i] += w * src[i]
        if relu:
            for i in range(n):
                if not row[i] > 0.0:
                    row[i] = 0.0


@njit(cache=True, fastmath=FM)
def _forward_fm(theta, xT, hs, q, obs_dim, hidden, layers, n_actions, dueling, vbuf):
    off = 0
    for layer in range(layers):
        fan_in = obs_dim if layer == 0 else hidden
        _dense_fm(theta, off, fan_in, hidden, xT if layer == 0 else hs[layer - 1], hs[layer], True)
        off += hidden * fan_in + hidden
    h = hs[layers - 1]
    _dense_fm(theta, off, hidden, n_actions, h, q, False)
    if dueling:
        v_off = off + n_actions * hidden + n_actions
        _dense_fm(theta, v_off, hidden, 1, h, vbuf, False)
        n = xT.shape[1]
        for i in range(n):
            mean_a = 0.0
            for j in range(n_actions):
                mean_a += q[j, i]
            mean_a /= n_actions
            for j in range(n_actions):
                q[j, i] = vbuf[0, i] + q[j, i] - mean_a


@njit(cache=True, fastmath=FM)
def _update_fm(
    theta,
    theta_t,
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
    sT,
    sb,
    a,
    r,
    s2T,
    done,
    w,
    td_out,
    ws,
):
    """One slot's update; sT/s2T feature-major (obs_dim, B), sb batch-major (B, obs_dim); ws a workspace."""
    bsz = sT.shape[1]
    hs, hs2, hst, q, qn, qt, vbuf, dh, dprev, hb, g, grad = ws
    _forward_fm(theta, sT, hs, q, obs_dim, hidden, layers, n_actions, dueling, vbuf)
    _forward_fm(theta, s2T, hs2, qn, obs_dim, hidden, layers, n_actions, dueling, vbuf)
    _forward_fm(theta_t, s2T, hst, qt, obs_dim, hidden, layers, n_actions, dueling, vbuf)
    loss = 0.0
    for i in range(bsz):
        best = 0
        for j in range(1, n_actions):
            if qn[j, i] > qn[best, i]:
                best = j
        y = r[i] + gamma * (1.0 - done[i]) * qt[best, i]
        qa = q[a[i], i]
        x = qa - y
        td_out[i] = y - qa
        ax = abs(x)
        loss += w[i] * (0.5 * x * x if ax < 1.0 else ax - 0.5)
        g[i] = w[i] * (x if ax < 1.0 else (1.0 if x > 0.0 else -1.0)) / bsz
    loss /= bsz
    for p in range(grad.size):
        grad[p] = 0.0
    a_off = 0
    for layer in range(layers):
        a_off += hidden * (obs_dim if layer == 0 else hidden) + hidden
    v_off = a_off + n_actions * hidden + n_actions
    top = hs[layers - 1]
    # batch-major copy of the top activations: dW = dZ @ H^T as axpys over contiguous rows
    for k in range(hidden):
        for i in range(bsz):
            hb[i, k] = top[k, i]
    inv_na = 1.0 / n_actions
    for k in range(hidden):
        for i in range(bsz):
            dh[k, i] = 0.0
    for j in range(n_actions):
        gb = 0.0
        for i in range(bsz):
            da = (g[i] if a[i] == j else 0.0) - (g[i] * inv_na if dueling else 0.0)
            gb += da
            for k in range(hidden):
                grad[a_off + j * hidden + k] += da * hb[i, k]
        grad[a_off + n_actions * hidden + j] += gb
        for k in range(hidden):
            wjk = theta[a_off + j * hidden + k]
            for i in range(bsz):
                da = (g[i] if a[i] == j else 0.0) - (g[i] * inv_na if dueling else 0.0)
                dh[k, i] += da * wjk
    if dueling:
        gb = 0.0
        for i in range(bsz):
            gb += g[i]
            for k in range(hidden):
                grad[v_off + k] += g[i] * hb[i, k]
        grad[v_off + hidden] += gb
        for k in range(hidden):
            wv = theta[v_off + k]
            for i in range(bsz):
                dh[k, i] += g[i] * wv
    off = a_off
    for layer in range(layers - 1, -1, -1):
        fan_in = obs_dim if layer == 0 else hidden
        off -= hidden * fan_in + hidden
        w_off = off
        b_off = off + hidden * fan_in
        h = hs[layer]
        for o in range(hidden):
            for i in range(bsz):
                if not h[o, i] > 0.0:
                    dh[o, i] = 0.0
        # batch-major input of this layer
        if layer > 0:
            prev = hs[layer - 1]
            for k in range(hidden):
                for i in range(bsz):
                    hb[i, k] = prev[k, i]
        for o in range(hidden):
            gb = 0.0
            for i in range(bsz):
                dz = dh[o, i]
                gb += dz
                if layer == 0:
                    for k in range(fan_in):
                        grad[w_off + o * fan_in + k] += dz * sb[i, k]
                else:
                    for k in range(fan_in):
                        grad[w_off + o * fan_in + k] += dz * hb[i, k]
            grad[b_off + o] += gb
        if layer > 0:
            for k in range(fan_in):
                for i in range(bsz):
                    dprev[k, i] = 0.0
            for o in range(hidden):
                for k in range(fan_in):
                    wok = theta[w_off + o * fan_in + k]
                    for i in range(bsz):
                        dprev[k, i] += wok * dh[o, i]
            for k in range(fan_in):
                for i in range(bsz):
                    dh[k, i] = dprev[k, i]
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


@njit(cache=True)
def _workspace(n_params_, obs_dim, hidden, layers, n_actions, bsz):
    f4 = np.float32
    return (
        np.empty((layers, hidden, bsz), f4),
        np.empty((layers, hidden, bsz), f4),
        np.empty((layers, hidden, bsz), f4),
        np.empty((n_actions, bsz), f4),
        np.empty((n_actions, bsz), f4),
        np.empty((n_actions, bsz), f4),
        np.empty((1, bsz), f4),
        np.empty((hidden, bsz), f4),
        np.empty((hidden, bsz), f4),
        np.empty((bsz, max(hidden, obs_dim)), f4),
        np.empty(bsz, f4),
        np.empty(n_params_, f4),
    )


def _fm_loop(parallel: bool) -> Callable:
    def run(theta, theta_t, m, v, step, s, a, r, s2, d, w, td, loss):
        k_slots, bsz, obs_dim = s.shape
        for k in prange(k_slots):
            ws = _workspace(theta.shape[1], obs_dim, HID, LAYERS, NA, bsz)
            sT = np.ascontiguousarray(s[k].T)
            s2T = np.ascontiguousarray(s2[k].T)
            loss[k] = _update_fm(
                theta[k],
                theta_t[k],
                m[k],
                v[k],
                step[k],
                1e-4,
                0.9,
                0.999,
                1e-8,
                0.99,
                obs_dim,
                HID,
                LAYERS,
                NA,
                True,
                sT,
                s[k],
                a[k],
                r[k],
                s2T,
                d[k],
                w[k],
                td[k],
                ws,
            )

    return njit(cache=True, parallel=parallel, fastmath=FM)(run)


fm_seq = _fm_loop(False)
fm_par = _fm_loop(True)


# ----------------------------------------------------------------------------- today: loop around fused.py
def _today_kernel():
    """Today's fused kernel (per_exp/engine/ddqn_kernel.py at baseline.BASELINE_REF), loaded from main's code."""
    import importlib.util

    import baseline

    path = baseline.tree() / "per_exp" / "engine" / "ddqn_kernel.py"
    spec = importlib.util.spec_from_file_location("today_ddqn_kernel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _today_loop(parallel: bool) -> Callable:
    kern = _today_kernel().ddqn_adam_step

    def run(theta, theta_t, m, v, step, s, a, r, s2, d, w, td, loss):
        for k in prange(s.shape[0]):
            loss[k] = kern(
                theta[k],
                theta_t[k],
                m[k],
                v[k],
                step[k],
                1e-4,
                0.9,
                0.999,
                1e-8,
                0.99,
                OBS,
                HID,
                LAYERS,
                NA,
                True,
                s[k],
                a[k],
                r[k],
                s2[k],
                d[k],
                w[k],
                td[k],
            )

    return njit(cache=False, parallel=parallel)(run)


# ----------------------------------------------------------------------------- slot axis innermost
@njit(cache=True)
def _dense_simd(W, bvec, inp, out, relu):
    """W (fan_out, fan_in, K), b (fan_out, K), inp (fan_in, n, K), out (fan_out, n, K)."""
    fan_out, fan_in, kk = W.shape
    n = inp.shape[1]
    for o in range(fan_out):
        for i in range(n):
            acc = out[o, i]
            for s in range(kk):
                acc[s] = bvec[o, s]
            for k in range(fan_in):
                wk = W[o, k]
                x = inp[k, i]
                for s in range(kk):
                    acc[s] += wk[s] * x[s]
            if relu:
                for s in range(kk):
                    if not acc[s] > 0.0:
                        acc[s] = 0.0


@njit(cache=True)
def _forward_simd(Ws, bs, Wa, ba, wv, bv, x, hs, q, vb):
    layers = len(Ws)
    for layer in range(layers):
        _dense_simd(Ws[layer], bs[layer], x if layer == 0 else hs[layer - 1], hs[layer], True)
    h = hs[layers - 1]
    _dense_simd(Wa, ba, h, q, False)
    _dense_simd(wv, bv, h, vb, False)
    na, n, kk = q.shape
    for i in range(n):
        for s in range(kk):
            mean_a = 0.0
            for j in range(na):
                mean_a += q[j, i, s]
            mean_a /= na
            for j in range(na):
                q[j, i, s] = vb[0, i, s] + q[j, i, s] - mean_a


@njit(cache=True)
def slot_simd_update(P, Pt, M, V, step, x, a, r, x2, d, w, td, loss, hs, hs2, hst, q, qn, qt, vb, g, dh, dprev, G):
    """P etc.: tuples of per-layer arrays (..., K); x (obs, B, K). Forward, loss, backward, Adam; all lanes = slots."""
    Ws, bs, Wa, ba, wv, bv = P
    _forward_simd(Ws, bs, Wa, ba, wv, bv, x, hs, q, vb)
    _forward_simd(Ws, bs, Wa, ba, wv, bv, x2, hs2, qn, vb)
    _forward_simd(Pt[0], Pt[1], Pt[2], Pt[3], Pt[4], Pt[5], x2, hst, qt, vb)
    na, n, kk = q.shape
    for s in range(kk):
        loss[s] = 0.0
    for i in range(n):
        for s in range(kk):
            best = 0
            for j in range(1, na):
                if qn[j, i, s] > qn[best, i, s]:
                    best = j
            y = r[i, s] + 0.99 * (1.0 - d[i, s]) * qt[best, i, s]
            qa = q[a[i, s], i, s]
            xx = qa - y
            td[i, s] = y - qa
            ax = abs(xx)
            loss[s] += w[i, s] * (0.5 * xx * xx if ax < 1.0 else ax - 0.5)
            g[i, s] = w[i, s] * (xx if ax < 1.0 else (1.0 if xx > 0.0 else -1.0)) / n
    GWs, Gbs, GWa, Gba, Gwv, Gbv = G
    for arr in GWs:
        arr[:] = 0.0
    for arr in Gbs:
        arr[:] = 0.0
    GWa[:] = 0.0
    Gba[:] = 0.0
    Gwv[:] = 0.0
    Gbv[:] = 0.0
    layers = len(Ws)
    top = hs[layers - 1]
    hidden = top.shape[0]
    dh[:] = 0.0
    for i in range(n):
        for j in range(na):
            for s in range(kk):
                da = (g[i, s] if a[i, s] == j else 0.0) - g[i, s] / na
                Gba[j, s] += da
            for k in range(hidden):
                for s in range(kk):
                    da = (g[i, s] if a[i, s] == j else 0.0) - g[i, s] / na
                    GWa[j, k, s] += da * top[k, i, s]
                    dh[k, i, s] += da * Wa[j, k, s]
        for s in range(kk):
            Gbv[0, s] += g[i, s]
        for k in range(hidden):
            for s in range(kk):
                Gwv[0, k, s] += g[i, s] * top[k, i, s]
                dh[k, i, s] += g[i, s] * wv[0, k, s]
    for layer in range(layers - 1, -1, -1):
        W = Ws[layer]
        fan_in = W.shape[1]
        h = hs[layer]
        inp = x if layer == 0 else hs[layer - 1]
        GW, Gb = GWs[layer], Gbs[layer]
        for o in range(hidden):
            for i in range(n):
                for s in range(kk):
                    if not h[o, i, s] > 0.0:
                        dh[o, i, s] = 0.0
        for o in range(hidden):
            for i in range(n):
                dz = dh[o, i]
                for s in range(kk):
                    Gb[o, s] += dz[s]
                for k in range(fan_in):
                    gw = GW[o, k]
                    xi = inp[k, i]
                    for s in range(kk):
                        gw[s] += dz[s] * xi[s]
        if layer > 0:
            dprev[:] = 0.0
            for o in range(hidden):
                for k in range(fan_in):
                    wk = W[o, k]
                    for i in range(n):
                        dp = dprev[k, i]
                        dz = dh[o, i]
                        for s in range(kk):
                            dp[s] += wk[s] * dz[s]
            dh[:] = dprev
    # Adam over every parameter array (flat views)
    for s in range(kk):
        step[s] += 1.0
    return 0


def _simd_state(k_slots: int, rng: np.random.Generator):
    f4 = np.float32

    def params():
        Ws = tuple(
            rng.normal(0, 0.2, size=(HID, OBS if layer == 0 else HID, k_slots)).astype(f4) for layer in range(LAYERS)
        )
        bs = tuple(np.zeros((HID, k_slots), f4) for _ in range(LAYERS))
        return (
            Ws,
            bs,
            rng.normal(0, 0.2, size=(NA, HID, k_slots)).astype(f4),
            np.zeros((NA, k_slots), f4),
            rng.normal(0, 0.2, size=(1, HID, k_slots)).astype(f4),
            np.zeros((1, k_slots), f4),
        )

    return params, params()


@njit(cache=True)
def _adam_simd(theta, grad, m, v, step, lr, beta1, beta2, eps):
    """theta etc.: (P, K) with the slot axis innermost."""
    n_p, kk = theta.shape
    for p in range(n_p):
        for s in range(kk):
            t = step[s]
            bc1 = 1.0 - beta1**t
            bc2_sqrt = (1.0 - beta2**t) ** 0.5
            gp = grad[p, s]
            mm = m[p, s] + (1.0 - beta1) * (gp - m[p, s])
            vv = v[p, s] * beta2 + (1.0 - beta2) * gp * gp
            m[p, s] = mm
            v[p, s] = vv
            theta[p, s] -= (lr / bc1) * mm / (np.sqrt(vv) / bc2_sqrt + eps)


# ----------------------------------------------------------------------------- numpy batched matmuls over K
def numpy_bmm_update(P, Pt, M, V, step, s, a, r, s2, d, w):
    """P: dict of stacked parameters (K, out, in) / (K, out). Same math as the kernels, numpy ops over K."""
    k_slots, bsz, _ = s.shape

    def forward(p, x):
        hs = []
        h = x
        for layer in range(LAYERS):
            z = np.matmul(h, np.swapaxes(p[f"W{layer}"], 1, 2)) + p[f"b{layer}"][:, None, :]
            h = np.maximum(z, 0.0)
            hs.append(h)
        adv = np.matmul(h, np.swapaxes(p["Wa"], 1, 2)) + p["ba"][:, None, :]
        val = np.matmul(h, np.swapaxes(p["wv"], 1, 2)) + p["bv"][:, None, :]
        return val + adv - adv.mean(axis=2, keepdims=True), hs

    both = np.concatenate([s, s2], axis=1)
    q_all, hs = forward(P, both)
    q, qn = q_all[:, :bsz], q_all[:, bsz:]
    qt, _ = forward(Pt, s2)
    best = qn.argmax(axis=2)
    y = r + 0.99 * (1.0 - d) * np.take_along_axis(qt, best[..., None], 2)[..., 0]
    qa = np.take_along_axis(q, a[..., None], 2)[..., 0]
    x = qa - y
    ax = np.abs(x)
    gvec = w * np.where(ax < 1.0, x, np.sign(x)) / bsz
    dq = np.zeros_like(q_all)
    np.put_along_axis(dq[:, :bsz], a[..., None], gvec[..., None], 2)
    dadv = dq - dq.sum(axis=2, keepdims=True) / NA
    dval = dq.sum(axis=2, keepdims=True)
    top = hs[-1]
    grads = {
        "Wa": np.matmul(np.swapaxes(dadv, 1, 2), top),
        "ba": dadv.sum(1),
        "wv": np.matmul(np.swapaxes(dval, 1, 2), top),
        "bv": dval.sum(1),
    }
    dh = np.matmul(dadv, P["Wa"]) + np.matmul(dval, P["wv"])
    for layer in range(LAYERS - 1, -1, -1):
        dz = dh * (hs[layer] > 0)
        inp = both if layer == 0 else hs[layer - 1]
        grads[f"W{layer}"] = np.matmul(np.swapaxes(dz, 1, 2), inp)
        grads[f"b{layer}"] = dz.sum(1)
        if layer:
            dh = np.matmul(dz, P[f"W{layer}"])
    step += 1.0
    bc1 = 1.0 - 0.9**step
    bc2 = np.sqrt(1.0 - 0.999**step)
    for key, gk in grads.items():
        shape = (k_slots,) + (1,) * (gk.ndim - 1)
        M[key] += 0.1 * (gk - M[key])
        V[key] = V[key] * 0.999 + 0.001 * gk * gk
        P[key] -= (1e-4 / bc1).reshape(shape) * M[key] / (np.sqrt(V[key]) / bc2.reshape(shape) + 1e-8)
    return td_like(y, qa)


def td_like(y, qa):
    return y - qa


# ----------------------------------------------------------------------------- driver
def _flat_state(k_slots: int, rng: np.random.Generator):
    p = n_params()
    theta = (rng.normal(0, 0.2, size=(k_slots, p))).astype(np.float32)
    return (theta, theta.copy(), np.zeros_like(theta), np.zeros_like(theta), np.zeros((k_slots, 1), np.float32))


def _batches(k_slots: int, rng: np.random.Generator):
    s = rng.normal(size=(k_slots, B, OBS)).astype(np.float32)
    s2 = rng.normal(size=(k_slots, B, OBS)).astype(np.float32)
    a = rng.integers(0, NA, size=(k_slots, B)).astype(np.int64)
    r = rng.choice([-1.0, 0.0, 1.0], size=(k_slots, B)).astype(np.float32)
    d = (rng.random((k_slots, B)) < 0.1).astype(np.float32)
    w = rng.random((k_slots, B)).astype(np.float32)
    return s, a, r, s2, d, w


def _time(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    fn()
    fn()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps, (time.process_time() - c0) / reps


def sgemm_rate(rows: int = 64 * 128, reps: int = 200) -> float:
    """GFLOP/s of numpy's SGEMM on (rows, 32) @ (32, 32): the matmul floor's rate."""
    x = np.random.default_rng(0).normal(size=(rows, HID)).astype(np.float32)
    wmat = np.random.default_rng(1).normal(size=(HID, HID)).astype(np.float32)
    out = np.empty((rows, HID), np.float32)
    wall, _ = _time(lambda: np.matmul(x, wmat, out=out), reps)
    return 2.0 * rows * HID * HID / wall / 1e9


def _make_call(
    name: str, k_slots: int, batches: tuple, rng: np.random.Generator, threads: int, today: tuple[Callable, Callable]
) -> Callable[[], object]:
    """One timed call of variant ``name``: K updates on fresh state (set up here, not in the timing)."""
    s, a, r, s2, d, w = batches
    td = np.empty((k_slots, B), np.float32)
    loss = np.empty(k_slots, np.float64)
    today_seq, today_par = today
    if name in ("today", "today_par", "fm", "fm_par"):
        st = _flat_state(k_slots, rng)
        fn = {"today": today_seq, "today_par": today_par, "fm": fm_seq, "fm_par": fm_par}[name]
        numba.set_num_threads(threads if name.endswith("_par") else 1)

        def call(fn=fn, st=st):
            fn(*st, s, a, r, s2, d, w, td, loss)
    elif name in ("blas", "blas_par"):
        from per_exp.engine import ddqn_kernel as ds

        st = _flat_state(k_slots, rng)
        cap = 1000
        S = rng.normal(size=(k_slots, cap, OBS)).astype(np.float32)
        S2 = rng.normal(size=(k_slots, cap, OBS)).astype(np.float32)
        A = rng.integers(0, NA, (k_slots, cap)).astype(np.int64)
        R = rng.choice([-1.0, 0.0, 1.0], (k_slots, cap)).astype(np.float32)
        D = (rng.random((k_slots, cap)) < 0.1).astype(np.float32)
        idx = rng.integers(0, cap, (k_slots, B))
        layout = np.array([OBS, HID, LAYERS, NA, 1], np.int64)
        ws = ds.workspace(threads, layout, B)
        hp = np.tile(np.array([1e-4, 0.99, 0.9, 0.999, 1e-8]), (k_slots, 1))
        params = np.stack(st[:4])
        step = np.zeros(k_slots, np.float32)
        mask = np.ones(k_slots, bool)
        fn = ds.update_slots if name.endswith("_par") else ds.update_slots_serial

        def call(
            params=params,
            step=step,
            hp=hp,
            layout=layout,
            S=S,
            A=A,
            R=R,
            S2=S2,
            D=D,
            idx=idx,
            mask=mask,
            ws=ws,
            fn=fn,
        ):
            fn(params, step, hp, layout, S, A, R, S2, D, idx, w, mask, td, loss, ws)

    elif name == "numpy_bmm":

        def mk():
            p = {
                f"W{i}": rng.normal(0, 0.2, (k_slots, HID, OBS if i == 0 else HID)).astype(np.float32)
                for i in range(LAYERS)
            }
            p.update({f"b{i}": np.zeros((k_slots, HID), np.float32) for i in range(LAYERS)})
            p.update(
                Wa=rng.normal(0, 0.2, (k_slots, NA, HID)).astype(np.float32),
                ba=np.zeros((k_slots, NA), np.float32),
                wv=rng.normal(0, 0.2, (k_slots, 1, HID)).astype(np.float32),
                bv=np.zeros((k_slots, 1), np.float32),
            )
            return p

        P, Pt = mk(), mk()
        M = {kk: np.zeros_like(v) for kk, v in P.items()}
        V = {kk: np.zeros_like(v) for kk, v in P.items()}
        stp = np.zeros(k_slots, np.float32)

        def call(P=P, Pt=Pt, M=M, V=V, stp=stp):
            numpy_bmm_update(P, Pt, M, V, stp, s, a, r, s2, d, w)
    elif name == "slot_simd":
        params, P = _simd_state(k_slots, rng)
        Pt = params()
        f4 = np.float32
        x = np.ascontiguousarray(np.transpose(s, (2, 1, 0)))
        x2 = np.ascontiguousarray(np.transpose(s2, (2, 1, 0)))
        aa, rr, dd, ww = (np.ascontiguousarray(z.T) for z in (a, r, d, w))
        hs = np.empty((LAYERS, HID, B, k_slots), f4)
        hs2, hst = np.empty_like(hs), np.empty_like(hs)
        q, qn, qt = (np.empty((NA, B, k_slots), f4) for _ in range(3))
        vb = np.empty((1, B, k_slots), f4)
        g = np.empty((B, k_slots), f4)
        dh, dprev = np.empty((HID, B, k_slots), f4), np.empty((HID, B, k_slots), f4)
        G = (
            tuple(np.zeros_like(z) for z in P[0]),
            tuple(np.zeros_like(z) for z in P[1]),
            np.zeros_like(P[2]),
            np.zeros_like(P[3]),
            np.zeros_like(P[4]),
            np.zeros_like(P[5]),
        )
        tds = np.empty((B, k_slots), f4)
        losss = np.empty(k_slots, f4)
        stp = np.zeros(k_slots, f4)
        pflat = np.zeros((n_params(), k_slots), f4)
        gflat, mflat, vflat = np.zeros_like(pflat), np.zeros_like(pflat), np.zeros_like(pflat)
        hsl = tuple(hs[i] for i in range(LAYERS))
        hs2l = tuple(hs2[i] for i in range(LAYERS))
        hstl = tuple(hst[i] for i in range(LAYERS))
        numba.set_num_threads(1)

        def call():
            slot_simd_update(
                P,
                Pt,
                None,
                None,
                stp,
                x,
                aa,
                rr,
                x2,
                dd,
                ww,
                tds,
                losss,
                hsl,
                hs2l,
                hstl,
                q,
                qn,
                qt,
                vb,
                g,
                dh,
                dprev,
                G,
            )
            _adam_simd(pflat, gflat, mflat, vflat, stp, 1e-4, 0.9, 0.999, 1e-8)
    else:
        raise SystemExit(f"unknown variant {name}")
    return call


def bench(ks: list[int], reps: int, variants: list[str], rounds: int) -> list[dict]:
    """Every (K, variant) timed in ``rounds`` interleaved rounds (load spikes hit all alike); medians reported."""
    rng = np.random.default_rng(0)
    rows = []
    threads = numba.config.NUMBA_NUM_THREADS
    today = (_today_loop(False), _today_loop(True))
    calls: list[tuple[int, str, int, int, Callable[[], object]]] = []  # (K, variant, threads, calls per timing, fn)
    for k_slots in ks:
        batches = _batches(k_slots, rng)
        for name in variants:
            t = threads if name.endswith("_par") else 1
            numba.set_num_threads(t)
            call = _make_call(name, k_slots, batches, rng, threads, today)
            call()  # compile outside the timings
            calls.append((k_slots, name, t, max(3, reps // k_slots), call))
    samples: dict[tuple[int, str], list[tuple[float, float]]] = {(c[0], c[1]): [] for c in calls}
    for rnd in range(rounds):
        for k_slots, name, t, n, call in calls if rnd % 2 == 0 else calls[::-1]:
            numba.set_num_threads(t)
            wall, cpu = _time(call, n)
            samples[(k_slots, name)].append((1e6 * wall / k_slots, 1e6 * cpu / k_slots))
    for k_slots, name, t, _, _ in calls:
        ws = sorted(x[0] for x in samples[(k_slots, name)])
        cs = sorted(x[1] for x in samples[(k_slots, name)])
        row = {
            "variant": name,
            "K": k_slots,
            "threads": t,
            "us_per_slot_update_wall": ws[len(ws) // 2],
            "us_per_slot_update_cpu": cs[len(cs) // 2],
            "min_wall": ws[0],
            "rounds": rounds,
        }
        rows.append(row)
        print(
            f"K={k_slots:4d} {name:10s} threads={t}: {row['us_per_slot_update_wall']:8.2f} us/slot-update wall "
            f"(min {ws[0]:.2f}), {row['us_per_slot_update_cpu']:8.2f} CPU",
            flush=True,
        )
    numba.set_num_threads(threads)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,8,32,128")
    ap.add_argument("--reps", type=int, default=400, help="slot-updates per timing (divided by K)")
    ap.add_argument("--variants", default="today,today_par,numpy_bmm,slot_simd,fm,fm_par,blas,blas_par")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per (K, variant); medians")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS numba calls: load it before limiting its threads
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # BLAS runs on the calling thread; prange does the parallelism
    load0 = os.getloadavg()[0]
    rate = sgemm_rate()
    floor_us = flops_per_update() / (rate * 1e9) * 1e6
    print(f"matmul floor: {flops_per_update() / 1e6:.2f} MFLOP/update at {rate:.0f} GFLOP/s SGEMM = {floor_us:.2f} us")
    rows = bench([int(x) for x in args.ks.split(",")], args.reps, args.variants.split(","), args.rounds)
    out = {
        "sgemm_gflops": rate,
        "floor_us": floor_us,
        "mflop_per_update": flops_per_update() / 1e6,
        "load": [load0, os.getloadavg()[0]],
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
