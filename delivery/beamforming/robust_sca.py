"""Robust max-min multicast beamformer on the exact worst-case gain, in numpy only ("robust").

Objective (normalised units of `scaling.py`, stacked beamformer v, per-node balls ||v_n||^2 <= p_n):
    maximise  F(v) = min_k f_k(v),   f_k(v) = |g_k^H v| - e_k ||v||,   e_k = eps ||g_k||,
the exact worst-case amplitude of user k over its error ball (result.worst_case_snr is max(0, F)^2).

Successive convex approximation. At the iterate v, with phi_k = g_k^H v / |g_k^H v|,
    f_k(x) >= l_k(x) = Re(conj(phi_k) g_k^H x) - e_k ||x||      (equality at x = v),
because |z| >= Re(conj(phi) z) for |phi| = 1. Each l_k is concave (linear minus a norm), so
max_x min_k l_k(x) over the balls is convex, and its optimum x is at least as good as v for F.
The -e_k ||x|| term is kept exact (not linearised), so a node may transmit below its budget.

The convex step is solved through its Lagrange dual over user weights pi in the simplex:
    D(pi) = max_x Re(d^H x) - E ||x||,   d = sum_k pi_k phi_k g_k,   E = sum_k pi_k e_k.
For fixed pi the inner maximiser aligns every block x_n with d_n; its amplitudes a_n solve
max_a sum_n a_n ||d_n|| - E ||a|| over 0 <= a_n <= sqrt(p_n), the single-user worst-case power
problem of closed_form.py, solved exactly by water-filling (`_amplitudes`). The balls are
strictly convex, so the maximiser is unique (when every d_n != 0) and D is differentiable with
gradient l_k(x(pi)) in pi_k: projected gradient steps on the simplex with Barzilai-Borwein step
lengths minimise it; x(pi) at the last pi is the step's candidate, and D(pi) >= the step's
optimum >= F(v) gives a certificate: once D(pi) - F(v) <= gap F(v) for the best start, no SCA
step from it can gain more than that fraction, and the design stops (a certified approximate
SCA fixed point; at most `outer` steps). pi is warm-started across SCA steps. A candidate
replaces its start's iterate only if its exact F is higher, so every start's F never falls and
the result is never worse than any start (MRT, robust-fast, the nominal design).

The guarantee does not depend on any of this: the caller (api._finish) recomputes the worst-case
SNR of the returned beamformer exactly (result.worst_case_snr).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .result import BeamformingError, c_einsum, vector_norms
from .scaling import ScaledProblem

# ndarray.min/sum/all without their Python wrappers (same reductions; called ~100 times a design)
_min, _sum, _all = np.minimum.reduce, np.add.reduce, np.logical_and.reduce


@dataclass(frozen=True)
class RobustScaSettings:
    outer: int = 60  # at most this many SCA steps (blocks of dual iterations)
    inner: int = 10  # Barzilai-Borwein dual iterations per SCA step (pi is warm-started)
    gap: float = 2e-4  # stop once the best start's SCA step can gain at most this (relative dual gap)
    warm: float = 0.05  # softmin temperature of the initial dual weights, in units of the mean gain
    # SCA steps of the fast starts (robust-fast's and the nominal design's); None: FastSettings.outer.
    # Fewer is an approximation (measured in docs/system-model.md, "Computing a slot"), not the default.
    start_steps: int | None = None

    def __post_init__(self) -> None:
        # at least one SCA step: design_robust_sca_batch returns what its steps reached
        if self.outer < 1 or self.inner < 1:
            raise BeamformingError(
                f"RobustScaSettings: outer = {self.outer} and inner = {self.inner} must be at least 1"
            )
        if self.start_steps is not None and self.start_steps < 1:
            raise BeamformingError(f"RobustScaSettings: start_steps = {self.start_steps} must be at least 1 (or None)")


def worst_gain(V: np.ndarray, g: np.ndarray, e_abs: np.ndarray) -> np.ndarray:
    """F(v) = min_k |g_k^H v| - e_k ||v|| for every row of V (S, n); may be negative. With a
    leading problem axis: V (B, S, n), g (B, K, n), e_abs (B, K)."""
    gh = g.conj().T if g.ndim == 2 else g.conj().transpose(0, 2, 1)
    return np.min(np.abs(V @ gh) - vector_norms(V, axis=-1, keepdims=True) * e_abs[..., None, :], axis=-1)


def _amplitudes(
    c: np.ndarray, s: np.ndarray, E: np.ndarray, group: int | None = None, s_norm: np.ndarray | None = None
) -> np.ndarray:
    """argmax_a sum_n a_n c_n - E ||a|| over 0 <= a_n <= s_n, row-wise: c (S, N) >= 0, s (N,), E (S,).

    The KKT point of closed_form.single_user_amplitudes: a_n = min(s_n, c_n r) with
    ||a(r)|| = E r, or 0 when E >= ||c|| (no direction beats the error term). If the nodes in
    the set Sat are saturated, ||a||^2 = S + r^2 C (S: their s^2, C: the others' c^2), so
    r^2 = S / (E^2 - C). Water-filling: start with every node saturated, recompute r, un-saturate
    the nodes with c_n r < s_n, repeat; r only falls, so the set only shrinks and at most N
    rounds reach the fixed point, which is the KKT point. `group`: rows come in problems of
    this many consecutive rows (a batch of designs), and the all-at-full-power answer is taken
    problem by problem, as for each problem alone. `s_norm`: ||s||, when the caller has it.
    """
    s_norm = np.sqrt(_sum(s * s)) if s_norm is None else s_norm
    # Every node at full power is optimal iff c_n >= E s_n / ||s|| for all n (the KKT multipliers
    # of the budgets are >= 0): the common case at small eps, answered without the rounds.
    full = c >= (E / s_norm)[:, None] * s
    if _all(full, axis=None):
        return s[None, :]  # every row: broadcasts like the (S, N) answer, without broadcast_to's cost
    if group is not None and group < c.shape[0]:
        full_problem = np.repeat(_all(full.reshape(-1, group * c.shape[1]), axis=1), group)  # (rows,)
        if full_problem.any():
            # the rounds on the other problems' rows only: every row's rounds are its own (a row at
            # its fixed point stays there while others go on), so each row is as for its problem alone
            rest = ~full_problem
            a = np.empty(c.shape)
            a[full_problem] = s
            a[rest] = _amplitudes(c[rest], s, E[rest], s_norm=s_norm)
            return a
    s2, c2 = s * s, c * c
    sat = c > 0
    for _ in range(c.shape[1] + 1):
        S_sat = sat @ s2
        den = E * E - _sum(np.where(sat, 0.0, c2), axis=1)
        r = np.sqrt(S_sat / np.where(den > 0, den, np.nan))  # nan: E too small for this set; keep all saturated
        new = sat & ~(c * r[:, None] < s)  # comparisons with nan are False: nothing leaves
        if _all(new == sat, axis=None):  # array_equal without its wrapper
            break
        sat = new
    a = np.where(sat, s, c * np.where(np.isnan(r), 0.0, r)[:, None])
    return np.where((E * E < _sum(c2, axis=1))[:, None], a, 0.0)


def _inner_max(
    D: np.ndarray,
    E: np.ndarray,
    p: np.ndarray,
    shape: tuple[int, int],
    group: int | None = None,
    sqrt_p: np.ndarray | None = None,
    s_norm: np.ndarray | None = None,
) -> np.ndarray:
    """argmax_x Re(d^H x) - E ||x|| over the node balls, for every row d of D (S, n)."""
    blocks = D.reshape(D.shape[0], *shape)
    norms = vector_norms(blocks, axis=2)  # (S, N)
    a = _amplitudes(norms, np.sqrt(p) if sqrt_p is None else sqrt_p, E, group, s_norm)
    return (blocks * (a / np.maximum(norms, 1e-300))[..., None]).reshape(D.shape)


@functools.lru_cache(maxsize=64)
def _ranks(k: int) -> np.ndarray:
    return np.arange(1, k + 1)


@functools.lru_cache(maxsize=256)
def _rows(m: int) -> np.ndarray:
    return np.arange(m)  # read-only use: an index


def _project_simplex(Y: np.ndarray) -> np.ndarray:
    """Euclidean projection of every row of Y onto the probability simplex (sort-based)."""
    k = Y.shape[1]
    # -sort(-Y), in place on one array (negation is exact) and without np.sort's wrapper and copy
    U = np.negative(Y)
    U.sort(axis=1)
    np.negative(U, out=U)
    css = U.cumsum(axis=1)
    css -= 1.0
    rho = k - 1 - ((U - css / _ranks(k) > 0)[:, ::-1]).argmax(axis=1)  # last index with a positive gap
    theta = css[_rows(Y.shape[0]), rho] / (rho + 1)
    out = Y - theta[:, None]
    return np.maximum(out, 0.0, out=out)


def design_robust_sca(
    sp: ScaledProblem, eps: float, starts: np.ndarray, settings: RobustScaSettings = RobustScaSettings()
) -> tuple[np.ndarray, float, int]:
    """Run the SCA from every row of `starts` (S, n) (normalised, within the budgets).

    Returns (best stacked beamformer, its worst-case gain F, SCA blocks run). F is the exact
    worst-case amplitude in normalised units (square it for the normalised SNR; <= 0 means no
    positive rate can be guaranteed).
    """
    starts = np.atleast_2d(np.asarray(starts, dtype=np.complex128))
    return design_robust_sca_batch([sp], eps, starts[None], settings)[0]


def design_robust_sca_batch(
    sps: list[ScaledProblem], eps: float, starts: np.ndarray, settings: RobustScaSettings = RobustScaSettings()
) -> list[tuple[np.ndarray, float, int]]:
    """`design_robust_sca` for B problems of one shape and budgets at once, starts (B, S, n):
    each result is bit for bit the one the problem gets alone. The rows of all problems run
    through the same numpy calls (row-wise arithmetic, stacked matmul); a problem leaves the
    batch at the SCA step where it alone would stop."""
    g_all = np.stack([sp.g for sp in sps])  # (B, K, n)
    n_prob, k, n = g_all.shape
    shape = (sps[0].n_nodes, sps[0].n_antennas)
    p = sps[0].p
    sqrt_p = np.sqrt(p)
    s_norm = np.sqrt(_sum(sqrt_p * sqrt_p))  # ||sqrt(p)||, as _amplitudes computes it
    e_all = np.stack([sp.eps_abs(eps) for sp in sps])  # (B, K)
    V = np.asarray(starts, dtype=np.complex128).copy()  # (B, S, n)
    S = V.shape[1]
    # Dual warm start: weight on the users that are worst at the start (softmin of the gains).
    f0 = np.abs(V @ g_all.conj().transpose(0, 2, 1)) - vector_norms(V, axis=-1, keepdims=True) * e_all[:, None, :]
    fv = _min(f0, axis=-1)  # (B, S): worst_gain(V, g_all, e_all), the min over users of f0
    temp = settings.warm * np.maximum(np.abs(f0).mean(axis=-1, keepdims=True), 1e-300)
    pi = np.exp(-(f0 - f0.min(axis=-1, keepdims=True)) / temp)
    pi /= _sum(pi, axis=-1, keepdims=True)
    alpha = 0.1 / np.maximum(np.abs(f0).mean(axis=-1), 1e-300)  # (B, S) dual step, BB-updated
    out: list = [None] * n_prob
    live = np.arange(n_prob)  # problems still running; the arrays below hold only their rows
    g, e_abs = g_all, e_all
    for blocks in range(1, settings.outer + 1):
        b = len(live)
        a = V @ g.conj().transpose(0, 2, 1)
        mag = np.abs(a)
        phi = np.where(mag > 0, a / np.where(mag > 0, mag, 1.0), 1.0)
        # (B*S, K, n): c_k = phi_k g_k, l_k(x) = Re(c_k^H x) - e_k ||x||; rows of all problems
        pg = (phi[:, :, :, None] * g[:, None, :, :]).reshape(b * S, k, n)
        pgc = pg.conj()
        e_rows = np.repeat(e_abs, S, axis=0)  # (B*S, K)
        e_col = e_abs[:, :, None]  # (B, K, 1): pi @ e_abs problem by problem
        pi = pi.reshape(b * S, k)
        alpha = alpha.reshape(b * S)
        dual = np.full(b * S, np.inf)
        pi_prev = grad_prev = None
        for _j in range(settings.inner):
            E = np.matmul(pi.reshape(b, S, k), e_col).reshape(b * S)
            x = _inner_max(c_einsum("sk,skn->sn", pi, pg), E, p, shape, S, sqrt_p, s_norm)
            grad = c_einsum("skn,sn->sk", pgc, x).real - vector_norms(x, axis=1, keepdims=True) * e_rows
            dual = np.minimum(dual, _sum(pi * grad, axis=1))  # D(pi) >= the SCA step's optimum
            if pi_prev is not None:  # Barzilai-Borwein step on the smooth dual
                ds, dg = pi - pi_prev, grad - grad_prev
                sy = _sum(ds * dg, axis=1)
                ss = _sum(ds * ds, axis=1)
                ok = sy > 1e-300
                alpha = np.where(ok, ss / np.where(ok, sy, 1.0), alpha * 2.0)
                np.maximum(alpha, 1e-8, out=alpha)  # np.clip's values, without its wrapper
                np.minimum(alpha, 1e8, out=alpha)
            pi_prev, grad_prev = pi, grad
            pi = _project_simplex(pi - alpha[:, None] * grad)
        E = np.matmul(pi.reshape(b, S, k), e_col).reshape(b * S)
        x = _inner_max(c_einsum("sk,skn->sn", pi, pg), E, p, shape, S, sqrt_p, s_norm).reshape(b, S, n)
        pi, alpha, dual = pi.reshape(b, S, k), alpha.reshape(b, S), dual.reshape(b, S)
        val = worst_gain(x, g, e_abs)
        move = val > fv
        converged = dual - fv <= settings.gap * np.maximum(np.abs(fv), 1e-12)
        V[move] = x[move]
        fv = np.where(move, val, fv)
        best = np.argmax(fv, axis=1)
        # a problem stops once its best start is a certified (approximate) SCA fixed point
        stop = converged[np.arange(b), best] | (blocks == settings.outer)
        for j in np.nonzero(stop)[0]:
            out[live[j]] = (V[j, best[j]], float(fv[j, best[j]]), blocks)
        if stop.all():
            break
        keep = ~stop
        live, V, fv, pi, alpha, g, e_abs = live[keep], V[keep], fv[keep], pi[keep], alpha[keep], g[keep], e_abs[keep]
    return out
