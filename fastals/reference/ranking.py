r"""Reference epochs of the ranking losses (BPR, WARP, logistic MF): the oracle of
``fastals/_kernels/_ranking.pxi``, one sample at a time in Python.

Symbols of :mod:`fastals.reference`; s_ui = x_u . y_i + b_i (+ b_u for LMF),
sigma(t) = 1 / (1 + exp(-t)), lambda_u / lambda_i the per-step L2 weights of the rows.

BPR (Rendle et al. 2009), for a stored (u, i) and a drawn j the user did not like:
    x_uij = s_ui - s_uj,  g = sigma(-x_uij)   (the gradient of ln sigma(x_uij) in x_uij)
WARP (Weston et al. 2011): draw j up to max_sampled times until s_uj > s_ui - 1 (at draw t),
    g = ln(max(1, floor((n_items - 1) / t)))  (the rank estimate's weight); else no step
and, for both, with the values from before the step:
    x_u += lr (g (y_i - y_j) - lambda_u x_u)
    y_i += lr (g x_u - lambda_i y_i)        b_i += lr (g - lambda_i b_i)
    y_j += lr (-g x_u - lambda_j y_j)       b_j += lr (-g - lambda_j b_j)
LMF (Johnson 2014): the log-likelihood c l - (1 + c) ln(1 + exp(l)) of a pair with
confidence c, l = s_uk; one sample is the stored pair (c = r_ui) and `negatives` drawn j
(c = 0), all scored with the same x_u; with g_k = c_k - (1 + c_k) sigma(s_uk), each item
steps in turn, then the user once:
    y_k += lr (g_k x_u - lambda_k y_k)          b_k += lr (g_k - lambda_k b_k)
    x_u += lr (sum_k g_k y_k - lambda_u x_u)    b_u += lr (sum_k g_k - lambda_u b_u)
(sum_k g_k y_k with each y_k of before its step).
Adagrad scales each coordinate's step by 1 / sqrt(A), A (from 1) += the bracket squared first.

The draws are those of the kernel: a splitmix64 stream per block (:func:`stream_state`),
uniform integers by multiply-shift (:func:`below`), so that a test can compare the two
sample for sample. Imports numpy only.
"""
from __future__ import annotations

import math

import numpy as np

MASK = (1 << 64) - 1
MAX_NEGATIVE_DRAWS = 64
LOSSES = ("bpr", "warp", "lmf")


class Stream:
    """The kernel's splitmix64 stream `stream` of `seed` (its stream_state)."""

    def __init__(self, seed, stream):
        self.state = (seed ^ (stream * 0xD1B54A32D192ED03)) & MASK
        self.next()

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        """A uniform integer in [0, bound) (multiply-shift)."""
        return ((self.next() >> 32) * bound) >> 32


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def softplus(t):
    t = float(t)
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


def ranking_epoch(loss, users, items, weights, liked, group_items, group_start, P, Q,
                  user_bias, item_bias, user_reg, item_reg, learning_rate, block_start,
                  schedule, seed, negatives=1, verify=True, popularity=False, adagrad=False,
                  accumulators=None, update_items=True, n_items=None):
    """One epoch of `loss` ("bpr", "warp", "lmf") over the blocks in `schedule` order.

    The pairs (users, items, weights) are stored block by block (`block_start`; block b of
    G * G pairs user group b // G with item group b % G), negatives of block b are drawn
    from ``group_items[group_start[b % G]:group_start[b % G + 1]]`` (or, with
    `popularity`, the item of a uniform pair of the block) with the stream (seed, b).
    `liked[u]` is the set of u's training items. Updates P, Q, the biases (and the
    adagrad `accumulators` (AP, AQ, Abu, Abi)) in place; returns (loss sum, steps, skipped).
    """
    G = int(round(len(schedule) ** 0.5))
    n_items = Q.shape[0] if n_items is None else n_items
    dt = P.dtype.type
    lr = dt(learning_rate)
    AP, AQ, Abu, Abi = accumulators if adagrad else (None,) * 4
    total = [0.0, 0, 0]

    def step(v, direction, A, index):
        if not adagrad:
            return lr * direction
        A[index] = A[index] + direction * direction
        return lr * direction / np.sqrt(A[index])

    def pair(u, i, j, g):
        xu, yi, yj = P[u].copy(), Q[i].copy(), Q[j].copy()
        ru, ri, rj = user_reg[u], item_reg[i], item_reg[j]
        du = step(xu, g * (yi - yj) - ru * xu, AP, u)
        di = step(yi, g * xu - ri * yi, AQ, i)
        dj = step(yj, -g * xu - rj * yj, AQ, j)
        P[u] = xu + du
        if update_items:
            Q[i] = yi + di
            Q[j] = yj + dj
            bi, bj = item_bias[i], item_bias[j]
            item_bias[i] = bi + step(bi, g - ri * bi, Abi, i)
            item_bias[j] = bj + step(bj, -g - rj * bj, Abi, j)

    def item(u, k, g, gradient):
        """y_k's step; returns gradient + g y_k (y_k of before)."""
        yk = Q[k].copy()
        gradient = gradient + g * yk
        if update_items:
            rk = item_reg[k]
            Q[k] = yk + step(yk, g * P[u] - rk * yk, AQ, k)
            bk = item_bias[k]
            item_bias[k] = bk + step(bk, g - rk * bk, Abi, k)
        return gradient

    def user(u, gradient, gradient_b):
        xu, ru = P[u].copy(), user_reg[u]
        P[u] = xu + step(xu, gradient - ru * xu, AP, u)
        bu = user_bias[u]
        user_bias[u] = bu + step(bu, gradient_b - ru * bu, Abu, u)

    for block in schedule:
        lo, hi = block_start[block], block_start[block + 1]
        if hi <= lo:
            continue
        h = block % G
        group = group_items[group_start[h]:group_start[h + 1]]
        stream = Stream(seed, int(block))

        def draw():
            if popularity:
                return int(items[lo + stream.below(hi - lo)])
            return int(group[stream.below(len(group))])

        def verified():
            for _ in range(MAX_NEGATIVE_DRAWS):
                j = draw()
                if not verify or j not in liked[u]:
                    return j
            return None

        for t in range(lo, hi):
            u, i = int(users[t]), int(items[t])
            if loss == "bpr":
                j = verified()
                if j is None:
                    total[2] += 1
                    continue
                x = P[u] @ Q[i] + item_bias[i] - (P[u] @ Q[j] + item_bias[j])
                total[0] += softplus(-x)
                pair(u, i, j, sigmoid(-x))
                total[1] += 1
            elif loss == "warp":
                s_ui = P[u] @ Q[i] + item_bias[i]
                for draws in range(1, negatives + 1):
                    j = draw()
                    s_uj = P[u] @ Q[j] + item_bias[j]
                    if s_uj > s_ui - 1:
                        if verify and j in liked[u]:
                            continue
                        g = dt(math.log(max(1.0, math.floor((n_items - 1) / draws))))
                        total[0] += float(g * (1 - s_ui + s_uj))
                        pair(u, i, j, g)
                        total[1] += 1
                        break
            else:
                c = weights[t]
                s = P[u] @ Q[i] + user_bias[u] + item_bias[i]
                total[0] += (1 + c) * softplus(s) - c * s
                g = c - (1 + c) * sigmoid(s)
                gradient, gradient_b = item(u, i, g, np.zeros_like(P[u])), g
                for _ in range(negatives):
                    j = verified()
                    if j is None:
                        total[2] += 1
                        continue
                    s = P[u] @ Q[j] + user_bias[u] + item_bias[j]
                    total[0] += softplus(s)
                    g = -sigmoid(s)
                    gradient, gradient_b = item(u, j, g, gradient), gradient_b + g
                user(u, gradient, gradient_b)
                total[1] += 1
    return tuple(total)
