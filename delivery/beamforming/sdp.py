"""Semidefinite designs: SDR max-min multicast and its S-procedure robust version.

Both work in the normalised units of `scaling.py` and are built once per (K, N, L) shape with
cvxpy Parameters (DPP), so a repeated solve skips canonicalisation.

SDR:     max t  s.t.  tr(G_k W) >= t,  tr(D_n W) <= p_n,  W >= 0 (complex Hermitian).
Robust:  max t - rho (tr W - u^H W u)  s.t.  for every user k, with lambda_k >= 0,
             [[W + lambda_k I,  W g_k], [g_k^H W,  g_k^H W g_k - t - lambda_k eps_k^2]] >= 0,
         tr(D_n W) <= p_n, W >= 0. The LMI is the S-procedure form of
         (g_k + e)^H W (g_k + e) >= t for all ||e|| <= eps_k (lossless for one constraint).
         rho = 0 gives the relaxation (an upper bound); rho > 0 with u the previous principal
         eigenvector is one step of the DC (difference-of-convex) rank-one programme, since
         tr W - lambda_max(W) >= 0 with equality iff rank W <= 1 and lambda_max(W) >= u^H W u.
         The relaxation is solved once at full size; the DC steps run on W = Q X Q^H, Q spanning
         the relaxation's dominant eigenvectors plus the robust-fast beamformer, where the same
         LMIs are exact and only r + 1 wide (SubspaceRobustProblem), so each step costs
         milliseconds instead of seconds.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .result import per_node_full_power, scale_to_budgets
from .scaling import ScaledProblem

if TYPE_CHECKING:
    import cvxpy as cp


def _cvxpy():
    # Deferred: importing cvxpy takes ~1 s and only sdr/robust-sdp need it, while the package's
    # METHODS tuple is imported by delivery.config.
    return importlib.import_module("cvxpy")


# Tolerances 1e-7 for Clarabel: the complex-to-real embedding of a Hermitian cone is degenerate
# and Clarabel stalls just above its 1e-8 defaults; 1e-7 relative is far below anything the
# delay model sees. The final SNRs never come from the solver: they are recomputed exactly from w.
SOLVER_OPTIONS: dict[str, dict] = {
    "CLARABEL": {"max_threads": 1, "tol_gap_rel": 1e-7, "tol_gap_abs": 1e-7, "tol_feas": 1e-7},
    "SCS": {"eps": 1e-5, "max_iters": 10000},
}
# Clarabel (interior point) first everywhere. SCS was tried first for the robust LMIs (K dense
# (N L + 1)-dimensional cones): on K=8, N=3, L=4 it ran into its iteration cap at 30-40 s per solve
# and returned bounds below the rank-one value it later found, so it is only the fallback.
SDR_SOLVERS = ("CLARABEL", "SCS")
ROBUST_SOLVERS = ("CLARABEL", "SCS")
GOOD_STATUS = ("optimal", "optimal_inaccurate")


@dataclass
class SdpSolution:
    W: np.ndarray | None  # normalised Hermitian (n, n)
    value: float  # normalised optimum t
    status: str
    solver: str | None


def _node_power(W: cp.Variable, n_nodes: int, n_ant: int) -> list:
    cp = _cvxpy()
    return [cp.real(cp.trace(W[i * n_ant : (i + 1) * n_ant, i * n_ant : (i + 1) * n_ant])) for i in range(n_nodes)]


def _solve(problem: cp.Problem, W: cp.Variable, t: cp.Variable, solvers: tuple[str, ...]) -> SdpSolution:
    cp = _cvxpy()
    status = "not-solved"
    for solver in solvers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "solution may be inaccurate": we report the status
                problem.solve(solver=solver, **SOLVER_OPTIONS[solver])
        except cp.error.SolverError as exc:
            status = f"{solver}: {exc}".splitlines()[0]
            continue
        status = problem.status
        if status in GOOD_STATUS and W.value is not None and t.value is not None:
            Wv = np.asarray(W.value, dtype=np.complex128)
            return SdpSolution(W=0.5 * (Wv + Wv.conj().T), value=float(t.value), status=status, solver=solver)
    return SdpSolution(W=None, value=float("nan"), status=status, solver=None)


class SdrProblem:
    """The SDR of single-group max-min multicast, parametrised by the channels and budgets."""

    def __init__(self, k: int, n_nodes: int, n_ant: int):
        cp = _cvxpy()
        n = n_nodes * n_ant
        self.shape = (k, n_nodes, n_ant)
        self.W = cp.Variable((n, n), hermitian=True)
        self.t = cp.Variable()
        self.G = [cp.Parameter((n, n), hermitian=True) for _ in range(k)]
        self.p = cp.Parameter(n_nodes, nonneg=True)
        constraints = [self.W >> 0]
        constraints += [cp.real(cp.trace(G @ self.W)) >= self.t for G in self.G]
        constraints += [pw <= self.p[i] for i, pw in enumerate(_node_power(self.W, n_nodes, n_ant))]
        self.problem = cp.Problem(cp.Maximize(self.t), constraints)

    def solve(self, sp: ScaledProblem) -> SdpSolution:
        for G, g in zip(self.G, sp.g):
            G.value = np.outer(g, g.conj())
        self.p.value = sp.p
        return _solve(self.problem, self.W, self.t, SDR_SOLVERS)


class RobustProblem:
    """S-procedure robust max-min multicast with a DC rank-one penalty, parametrised."""

    def __init__(self, k: int, n_nodes: int, n_ant: int):
        cp = _cvxpy()
        n = n_nodes * n_ant
        self.shape = (k, n_nodes, n_ant)
        self.W = cp.Variable((n, n), hermitian=True)
        self.t = cp.Variable()
        self.lam = cp.Variable(k, nonneg=True)
        self.g = [cp.Parameter(n, complex=True) for _ in range(k)]
        self.G = [cp.Parameter((n, n), hermitian=True) for _ in range(k)]
        self.e2 = cp.Parameter(k, nonneg=True)
        self.p = cp.Parameter(n_nodes, nonneg=True)
        # R = rho (I - u u^H) as one parameter keeps the objective DPP (rho * u u^H would be a
        # product of parameters).
        self.R = cp.Parameter((n, n), hermitian=True)
        eye = np.eye(n)
        constraints = [self.W >> 0]
        for i in range(k):
            wg = cp.reshape(self.W @ self.g[i], (n, 1), order="F")
            corner = cp.reshape(
                cp.real(cp.trace(self.G[i] @ self.W)) - self.t - self.lam[i] * self.e2[i], (1, 1), order="F"
            )
            constraints.append(cp.bmat([[self.W + self.lam[i] * eye, wg], [wg.H, corner]]) >> 0)
        constraints += [pw <= self.p[i] for i, pw in enumerate(_node_power(self.W, n_nodes, n_ant))]
        penalty = cp.real(cp.trace(self.R @ self.W))  # rho (tr W - u^H W u)
        self.problem = cp.Problem(cp.Maximize(self.t - penalty), constraints)

    def solve(self, sp: ScaledProblem, eps: float, rho: float = 0.0, u: np.ndarray | None = None) -> SdpSolution:
        n = sp.g.shape[1]
        for G, gp, g in zip(self.G, self.g, sp.g):
            gp.value = g
            G.value = np.outer(g, g.conj())
        self.e2.value = sp.eps_abs(eps) ** 2
        self.p.value = sp.p
        self.R.value = np.zeros((n, n), dtype=np.complex128) if u is None else rho * (np.eye(n) - np.outer(u, u.conj()))
        return _solve(self.problem, self.W, self.t, ROBUST_SOLVERS)


class SubspaceRobustProblem:
    """The robust LMIs for W = Q X Q^H with Q (n, r) orthonormal: exact, and r + 1 wide.

    With W = Q X Q^H, a unitary change of basis [Q, Q_perp] splits the (n+1) LMI into lambda I
    on Q_perp (PSD as lambda >= 0) and [[X + lambda I, X q], [q^H X, q^H X q - t - lambda eps^2]]
    with q = Q^H g: the same S-procedure, in r dimensions, with the same radius eps.
    """

    def __init__(self, k: int, n_nodes: int, r: int):
        cp = _cvxpy()
        self.shape = (k, n_nodes, r)
        self.X = cp.Variable((r, r), hermitian=True)
        self.t = cp.Variable()
        self.lam = cp.Variable(k, nonneg=True)
        self.q = [cp.Parameter(r, complex=True) for _ in range(k)]
        self.Gq = [cp.Parameter((r, r), hermitian=True) for _ in range(k)]
        self.e2 = cp.Parameter(k, nonneg=True)
        self.D = [cp.Parameter((r, r), hermitian=True) for _ in range(n_nodes)]  # Q_n^H Q_n
        self.p = cp.Parameter(n_nodes, nonneg=True)
        self.R = cp.Parameter((r, r), hermitian=True)  # rho (I - u u^H)
        eye = np.eye(r)
        constraints = [self.X >> 0]
        for i in range(k):
            xq = cp.reshape(self.X @ self.q[i], (r, 1), order="F")
            corner = cp.reshape(
                cp.real(cp.trace(self.Gq[i] @ self.X)) - self.t - self.lam[i] * self.e2[i], (1, 1), order="F"
            )
            constraints.append(cp.bmat([[self.X + self.lam[i] * eye, xq], [xq.H, corner]]) >> 0)
        constraints += [cp.real(cp.trace(D @ self.X)) <= self.p[i] for i, D in enumerate(self.D)]
        self.problem = cp.Problem(cp.Maximize(self.t - cp.real(cp.trace(self.R @ self.X))), constraints)

    def solve(self, sp: ScaledProblem, eps: float, Q: np.ndarray, rho: float, u: np.ndarray) -> SdpSolution:
        r = Q.shape[1]
        qs = sp.g @ Q.conj()  # rows q_k = Q^H g_k
        for qp, G, q in zip(self.q, self.Gq, qs):
            qp.value = q
            G.value = np.outer(q, q.conj())
        blocks = Q.reshape(sp.n_nodes, sp.n_antennas, r)
        for D, B in zip(self.D, blocks):
            M = B.conj().T @ B
            D.value = 0.5 * (M + M.conj().T)
        self.e2.value = sp.eps_abs(eps) ** 2
        self.p.value = sp.p
        self.R.value = rho * (np.eye(r) - np.outer(u, u.conj()))
        return _solve(self.problem, self.X, self.t, ROBUST_SOLVERS)


@dataclass
class ProblemStore:
    """Compiled problems per (kind, K, N, L); owned by whoever repeats designs (BeamformerCache)."""

    problems: dict = field(default_factory=dict)
    builds: int = 0

    def get(self, kind: str, shape: tuple[int, int, int]):
        key = (kind, *shape)
        if key not in self.problems:
            self.problems[key] = {"sdr": SdrProblem, "robust": RobustProblem, "robust-sub": SubspaceRobustProblem}[
                kind
            ](*shape)
            self.builds += 1
        return self.problems[key]


def min_objective(cands: np.ndarray, g: np.ndarray, e_abs: np.ndarray | None = None) -> np.ndarray:
    """Normalised min over users of the (worst-case when e_abs is given) SNR of each candidate row."""
    gains = np.abs(cands @ g.conj().T)  # (M, K): |g_k^H v|
    if e_abs is not None:
        gains = np.maximum(0.0, gains - np.linalg.norm(cands, axis=1)[:, None] * e_abs[None, :])
    return np.min(gains, axis=1) ** 2


def rank_one_candidates(W: np.ndarray, sp: ScaledProblem, n_random: int, rng: np.random.Generator) -> np.ndarray:
    """Principal eigenvector plus Gaussian draws xi ~ CN(0, W), each scaled to the budgets two ways
    (uniform: keeps the direction; per node: every node at full power). Rows are stacked (N*L,)."""
    lam, V = np.linalg.eigh(W)
    lam = np.clip(lam, 0.0, None)
    n = W.shape[0]
    z = (rng.standard_normal((n_random, n)) + 1j * rng.standard_normal((n_random, n))) / np.sqrt(2.0)
    draws = (z * np.sqrt(lam)) @ V.T
    raw = np.vstack([np.sqrt(lam[-1]) * V[:, -1][None, :], draws]).reshape(-1, sp.n_nodes, sp.n_antennas)
    both = np.concatenate([scale_to_budgets(raw, sp.p), per_node_full_power(raw, sp.p)])
    return both.reshape(both.shape[0], -1)


@dataclass
class SdpDesign:
    v: np.ndarray  # normalised stacked beamformer (N*L,)
    value: float  # normalised guaranteed min objective of v
    upper_bound: float | None  # normalised relaxation optimum
    status: str
    solver: str | None
    iterations: int
    rank_gap: float  # (tr W - lambda_max) / tr W of the last solve


def design_sdr(sp: ScaledProblem, problem: SdrProblem, n_random: int, rng: np.random.Generator) -> SdpDesign | None:
    sol = problem.solve(sp)
    if sol.W is None:
        return None
    cands = rank_one_candidates(sol.W, sp, n_random, rng)
    vals = min_objective(cands, sp.g)
    best = int(np.argmax(vals))
    lam = np.linalg.eigvalsh(sol.W)
    gap = float((lam.sum() - lam[-1]) / max(lam.sum(), 1e-300))
    return SdpDesign(cands[best], float(vals[best]), sol.value, sol.status, sol.solver, 1, gap)


def design_robust(
    sp: ScaledProblem,
    eps: float,
    problems: ProblemStore,
    n_random: int,
    rng: np.random.Generator,
    extra: np.ndarray | None = None,
    max_dc_iters: int = 15,
    gap_tol: float = 1e-6,
    t_tol: float = 1e-5,
    max_subspace: int = 6,
    eig_rtol: float = 1e-3,
) -> SdpDesign | None:
    """Full S-procedure relaxation (upper bound, Gaussian randomisation), then DC rank-one steps
    in the subspace spanned by the relaxation's dominant eigenvectors and the `extra` directions
    (the robust-fast beamformer); keep the best exact worst case among all candidates."""
    k = sp.g.shape[0]
    e_abs = sp.eps_abs(eps)
    first = problems.get("robust", (k, sp.n_nodes, sp.n_antennas)).solve(sp, eps)
    if first.W is None:
        return None
    cands = [rank_one_candidates(first.W, sp, n_random, rng)]
    lam, V = np.linalg.eigh(first.W)
    keep = V[:, lam >= eig_rtol * max(lam[-1], 1e-300)][:, ::-1][:, :max_subspace]
    span = keep if extra is None else np.hstack([keep, np.atleast_2d(extra).T])
    Q, rr = np.linalg.qr(span)
    Q = Q[:, np.abs(np.diag(rr)) > 1e-9 * np.abs(rr).max()]  # drop dependent directions
    sub = problems.get("robust-sub", (k, sp.n_nodes, Q.shape[1]))
    X = Q.conj().T @ first.W @ Q
    t, status, solver = first.value, first.status, first.solver
    iterations = 1
    # Penalty weight in objective units: t per unit of transmitted trace, doubled while the rank
    # gap persists. Once X is rank one the steps continue until t settles, since the first
    # rank-one point is pulled toward the previous eigenvector and need not be the best one.
    rho = 0.5 * max(first.value, 1e-6) / max(float(np.real(np.trace(X))), 1e-12)
    t_prev = -np.inf
    gap = 1.0
    for _ in range(max_dc_iters):
        lx, VX = np.linalg.eigh(X)
        gap = float((lx.sum() - lx[-1]) / max(lx.sum(), 1e-300))
        if gap <= gap_tol and abs(t - t_prev) <= t_tol * max(abs(t), 1e-12):
            break
        sol = sub.solve(sp, eps, Q, rho, VX[:, -1])
        iterations += 1
        if sol.W is None:
            break
        t_prev = t if gap <= gap_tol else -np.inf
        X, t, status, solver = sol.W, sol.value, sol.status, sol.solver
        if gap > gap_tol:
            rho *= 2.0
    lx, VX = np.linalg.eigh(X)
    gap = float((lx.sum() - lx[-1]) / max(lx.sum(), 1e-300))
    principal = (np.sqrt(max(lx[-1], 0.0)) * (Q @ VX[:, -1])).reshape(1, sp.n_nodes, sp.n_antennas)
    dc = np.concatenate([scale_to_budgets(principal, sp.p), per_node_full_power(principal, sp.p)])
    cands.append(dc.reshape(2, -1))
    if extra is not None:
        cands.append(np.atleast_2d(extra))
    allc = np.vstack(cands)
    vals = min_objective(allc, sp.g, e_abs)
    best = int(np.argmax(vals))
    return SdpDesign(allc[best], float(vals[best]), first.value, status, solver, iterations, gap)
