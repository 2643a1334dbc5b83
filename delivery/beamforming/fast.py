"""Fast max-min multicast beamformer in numpy only (no conic solver), for learning loops.

Successive convex approximation (SCA). At the current v, every user's SNR s_k = |g_k^H v|^2 is
bounded below by its linearisation (a convex function lies above its tangent):
    s_k(x) >= 2 Re(conj(a_k) g_k^H x) - |a_k|^2,   a_k = g_k^H v,  with equality at x = v.
Maximising the smallest of these affine bounds over the per-node balls ||x_n||^2 <= p_n is a
convex problem; its Lagrange dual over user weights pi (a probability vector) is
    min_pi  2 sum_n sqrt(p_n) ||d_n(pi)|| - sum_k pi_k |a_k|^2,   d(pi) = sum_k pi_k a_k g_k,
whose maximiser for given pi is x_n = sqrt(p_n) d_n / ||d_n|| and whose gradient in pi_k is the
k-th linearised SNR at that x. A few exponentiated-gradient (mirror-descent) steps on pi, averaged,
give the next iterate. Starts: MRT and the dominant eigenvector of sum_k g_k g_k^H / ||g_k||^2
(plus optional random ones from the caller's rng); the best true min SNR over all iterates is kept.
Measured distance from sdr: docs/beamforming.md.

Robust variant ("robust-fast"): every iterate has each node at full power, so ||v|| = R =
sqrt(sum_n p_n) is fixed and the worst-case amplitude of user k within ||e_k|| <= eps_k is
|g_k^H v| - eps_k R. The same SCA runs on these margins with the amplitude linearisation
|g_k^H x| >= Re(conj(phi_k) g_k^H x), phi_k = a_k / |a_k|: dual
    min_pi  sum_n sqrt(p_n) ||sum_k pi_k phi_k g_k,n|| - sum_k pi_k eps_k R,
gradient = linearised margins. Full power is a restriction here (with a large eps a weak node
may do better below its budget, as the single-user optimum shows), which is why "robust"
(the S-procedure SDP) stays the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .closed_form import mrt
from .result import per_node_full_power, vector_norms
from .scaling import ScaledProblem

# ndarray.min/sum without their Python wrappers (same reductions; called ~100 times a design)
_min, _sum = np.minimum.reduce, np.add.reduce


@dataclass(frozen=True)
class FastSettings:
    outer: int = 20  # SCA steps
    inner: int = 5  # mirror-descent steps on the dual weights per SCA step
    step: float = 1.0  # mirror-descent step, in units of the mean SNR
    random_starts: int = 0  # extra random starts drawn from the rng


def _starts(
    sp: ScaledProblem, rng: np.random.Generator, settings: FastSettings, extra: list | None = None
) -> list[np.ndarray]:
    g = sp.g
    k, n = g.shape
    norms = np.linalg.norm(g, axis=1)
    starts = [mrt(g.reshape(k, sp.n_nodes, sp.n_antennas), sp.p).reshape(-1)]
    if k > 1 and np.any(norms > 0):
        gn = g[norms > 0] / norms[norms > 0, None]
        starts.append(np.linalg.eigh(gn.T @ gn.conj())[1][:, -1])  # dominant direction of sum g g^H
    if settings.random_starts > 0:
        shape_r = (settings.random_starts, n)
        starts.extend(rng.standard_normal(shape_r) + 1j * rng.standard_normal(shape_r))
    starts.extend(extra or [])
    return starts


def design_fast(
    sp: ScaledProblem,
    rng: np.random.Generator,
    settings: FastSettings = FastSettings(),
    eps: float = 0.0,
    extra_starts: list | None = None,
) -> tuple[np.ndarray, float, int]:
    """Return (normalised stacked beamformer, normalised min SNR, SCA steps); with eps > 0 the
    robust variant, whose value is the worst-case min SNR within the error bound. extra_starts
    (normalised stacked vectors) join the default starts."""
    return design_fast_batch([sp], rng, settings, eps, [extra_starts])[0]


def default_starts(sps: list[ScaledProblem], rng: np.random.Generator, settings: FastSettings) -> list[np.ndarray]:
    """Each problem's starts (S, n) as `design_fast_batch` makes them without extra starts: MRT,
    the dominant direction, and `settings.random_starts` random ones drawn from rng in order.
    Without random starts the dominant directions come from one stacked eigh (LAPACK runs on
    each matrix as on it alone), not one call per problem."""
    if settings.random_starts > 0 or len(sps) < 2:
        return [np.asarray(_starts(sp, rng, settings)) for sp in sps]
    rows: list[list[np.ndarray]] = []
    grams: dict[int, np.ndarray] = {}
    for i, sp in enumerate(sps):
        g = sp.g
        k = g.shape[0]
        norms = np.linalg.norm(g, axis=1)
        rows.append([mrt(g.reshape(k, sp.n_nodes, sp.n_antennas), sp.p).reshape(-1)])
        if k > 1 and np.any(norms > 0):  # as in _starts
            gn = g[norms > 0] / norms[norms > 0, None]
            grams[i] = gn.T @ gn.conj()
    if grams:
        for i, vec in zip(grams, np.linalg.eigh(np.stack(list(grams.values())))[1][..., -1]):
            rows[i].append(vec)
    return [np.asarray(r) for r in rows]


def design_fast_batch(
    sps: list[ScaledProblem],
    rng: np.random.Generator,
    settings: FastSettings = FastSettings(),
    eps: float = 0.0,
    extra_starts: list | None = None,
    starts: list[np.ndarray] | None = None,
) -> list[tuple[np.ndarray, float, int]]:
    """`design_fast` for several problems of one shape and one budget vector (a group's channels
    in several fading states), each result bit for bit the one `design_fast` gives alone: the
    same arithmetic runs on a leading problem axis (numpy's stacked matmul multiplies each slice
    as a single product would), so the loops' numpy calls are paid once for the batch. The
    starts are drawn problem by problem, in order; problems whose start counts differ (an
    all-zero channel) are designed one by one. `starts`: the problems' starts when the caller
    has made them (`default_starts`, which two designs of one problem share; then no extra
    starts and no rng draws here). Raises ValueError for mixed shapes or budgets."""
    extras = extra_starts or [None] * len(sps)
    if len({sp.g.shape for sp in sps}) > 1 or any(not np.array_equal(sp.p, sps[0].p) for sp in sps):
        raise ValueError("design_fast_batch: the problems differ in shape or budgets")
    if starts is None:
        starts = [np.asarray(_starts(sp, rng, settings, extra)) for sp, extra in zip(sps, extras)]
    if len({st.shape for st in starts}) > 1:
        return [_design_fast_stack([sp], [st], settings, eps)[0] for sp, st in zip(sps, starts)]
    return _design_fast_stack(sps, starts, settings, eps)


def _design_fast_stack(
    sps: list[ScaledProblem], starts: list[np.ndarray], settings: FastSettings, eps: float
) -> list[tuple[np.ndarray, float, int]]:
    if eps > 0:
        return _design_fast_robust(sps, starts, settings, eps)
    g = np.stack([sp.g for sp in sps])  # (B, K, n)
    _, k, n = g.shape
    shape = (sps[0].n_nodes, sps[0].n_antennas)
    p = sps[0].p

    def project(d: np.ndarray) -> np.ndarray:  # argmax of a linear function over the node balls
        return per_node_full_power(d.reshape(*d.shape[:-1], *shape), p).reshape(d.shape)

    gh = g.conj().transpose(0, 2, 1)  # (B, n, K), once: the loops below multiply by it ~100 times
    V = project(np.stack(starts))  # (B, S, n)
    a = V @ gh  # (B, S, K): g_k^H v
    s = np.abs(a) ** 2
    best_val = _min(s, axis=-1)
    best_v = V.copy()
    pi = np.full((*V.shape[:-1], k), 1.0 / k)
    neg_step = -settings.step
    for _ in range(settings.outer):
        scale = np.maximum(_sum(s, axis=-1, keepdims=True) / k, 1e-300)  # the mean, without its wrapper
        avg = np.zeros(pi.shape)  # pi is float64: zeros_like's zeros, without its wrapper
        for _ in range(settings.inner):
            x = project((pi * a) @ g)
            lin = 2.0 * (a * np.conj(x @ gh)).real - s  # dual gradient
            lin -= _min(lin, axis=-1, keepdims=True)  # in place: the same operations, fewer arrays
            lin *= neg_step
            lin /= scale
            pi = pi * np.exp(lin, out=lin)
            pi /= _sum(pi, axis=-1, keepdims=True)
            avg += pi
        V = project((avg / settings.inner * a) @ g)
        a = V @ gh
        s = np.abs(a) ** 2
        val = _min(s, axis=-1)
        better = val > best_val
        best_val = np.where(better, val, best_val)
        best_v[better] = V[better]
    i = np.argmax(best_val, axis=-1)
    return [(best_v[b, i[b]], float(best_val[b, i[b]]), settings.outer) for b in range(len(sps))]


def _design_fast_robust(
    sps: list[ScaledProblem], starts: list[np.ndarray], settings: FastSettings, eps: float
) -> list[tuple[np.ndarray, float, int]]:
    g = np.stack([sp.g for sp in sps])  # (B, K, n)
    _, k, n = g.shape
    shape = (sps[0].n_nodes, sps[0].n_antennas)
    p = sps[0].p
    e_abs = np.stack([sp.eps_abs(eps) for sp in sps])[:, None, :]  # (B, 1, K)
    offset = e_abs * np.sqrt(np.sum(p))  # eps_k R: worst-case loss at full power
    gh = g.conj().transpose(0, 2, 1)

    def project(d: np.ndarray) -> np.ndarray:
        return per_node_full_power(d.reshape(*d.shape[:-1], *shape), p).reshape(d.shape)

    def margins(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = V @ gh
        mag = np.abs(a)  # kept: the next SCA step's phi and scale use the same |a|
        return a, mag, mag - vector_norms(V, axis=-1, keepdims=True) * e_abs

    V = project(np.stack(starts))
    a, mag, m = margins(V)
    best_val = _min(m, axis=-1)
    best_v = V.copy()
    pi = np.full((*V.shape[:-1], k), 1.0 / k)
    neg_step = -settings.step
    for _ in range(settings.outer):
        phi = a / np.maximum(mag, 1e-300)
        phi_c = np.conj(phi)  # once per SCA step, not per dual step
        # mean without its wrapper: numpy's mean is this sum divided by the count
        scale = np.maximum(_sum(mag, axis=-1, keepdims=True) / k, 1e-300)
        avg = np.zeros(pi.shape)  # pi is float64: zeros_like's zeros, without its wrapper
        for _ in range(settings.inner):
            x = project((pi * phi) @ g)
            lin = (phi_c * (x @ gh)).real - offset
            lin -= _min(lin, axis=-1, keepdims=True)  # in place: the same operations, fewer arrays
            lin *= neg_step
            lin /= scale
            pi = pi * np.exp(lin, out=lin)
            pi /= _sum(pi, axis=-1, keepdims=True)
            avg += pi
        V = project((avg / settings.inner * phi) @ g)
        a, mag, m = margins(V)
        val = _min(m, axis=-1)
        better = val > best_val
        best_val = np.where(better, val, best_val)
        best_v[better] = V[better]
    i = np.argmax(best_val, axis=-1)
    return [(best_v[b, i[b]], float(max(best_val[b, i[b]], 0.0) ** 2), settings.outer) for b in range(len(sps))]
