"""`design`: one multicast beamformer for one group of users served by a CoMP set of nodes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from . import closed_form
from .cache import BeamformerCache
from .fast import FastSettings, default_starts, design_fast, design_fast_batch
from .result import (
    METHODS,
    ROBUST_DESIGNS,
    ROBUST_METHODS,
    BeamformingError,
    BeamformingResult,
    clip_to_budgets,
    evaluate,
    validate,
    worst_case_snr,
)
from .robust_sca import RobustScaSettings, design_robust_sca, design_robust_sca_batch
from .scaling import ScaledProblem, scale_problem
from .sdp import ProblemStore, design_robust, design_sdr

TINY_GROUP, SMALL_GROUP = 3, 6  # robust: starts by group size (robust_sca)
DEFAULT_RANDOMISATIONS = 100  # Gaussian draws per relaxation (each scaled two ways)
# Methods `design_batch` solves as one batch: numpy SCA designs that draw nothing from the rng
# (without random starts), so designing them together or one by one, in any order, is the same.
BATCHED_METHODS = ("fast", "fast-backoff", "fast-harq", "robust-fast", "robust")


def design(
    h: np.ndarray,
    power: np.ndarray,
    noise: float,
    method: str,
    eps: float = 0.0,
    rng: np.random.Generator | None = None,
    *,
    cache: BeamformerCache | None = None,
    n_random: int = DEFAULT_RANDOMISATIONS,
    fast: FastSettings = FastSettings(),
    robust: RobustScaSettings = RobustScaSettings(),
    single_user_closed_form: bool = True,
) -> BeamformingResult:
    """Max-min SNR multicast beamformer for channels h (K, N, L), per-node budgets power (N,) in W.

    method: "mrt" (closed form), "sdr" (relaxation + Gaussian randomisation), "fast" (numpy SCA,
    no solver), "fast-backoff" (fast's beamformer, min_snr = its exact worst case within eps), "fast-harq"
    (fast's beamformer and rate, sent with incremental-redundancy HARQ: retransmission.py),
    "robust" (numpy SCA on the exact worst-case gain; robust_sca.py), "robust-fast" (SCA on
    worst-case margins with every node at full power), "robust-sdp" (S-procedure LMIs + DC
    rank-one steps; an offline reference, minutes for 20 users). For the methods in
    ROBUST_METHODS min_snr is guaranteed for every ||e_k|| <= eps ||h_k||; eps changes only the
    beamformers of ROBUST_DESIGNS, and for every method `worst_snr` reports the exact worst case
    within eps. rng drives the Gaussian randomisation and the fast path's random starts (None: a
    fixed seed, so results are deterministic). For K == 1 every method returns the closed-form
    optimum unless single_user_closed_form=False (used by tests to check the solvers reach it).
    Raises BeamformingError for an unknown method or invalid h, power, noise or eps.
    """
    if method not in METHODS:
        raise BeamformingError(f"method: unknown beamforming method {method!r} (choose from {', '.join(METHODS)})")
    h, power, noise, eps = validate(h, power, noise, eps)
    rng = np.random.default_rng(0) if rng is None else rng
    start = time.perf_counter()
    key = None
    if cache is not None:
        key = cache.key(h, power, noise, method, eps)
        hit = _from_cache(cache, key, h, power, noise, eps, method, start)
        if hit is not None:
            return hit
    problems = cache.problems if cache is not None else ProblemStore()
    result = _design(
        h, power, noise, method, eps, rng, problems, n_random, fast, robust, single_user_closed_form, start
    )
    if cache is not None:
        cache.put(key, result)
    return result


def design_batch(
    hs: np.ndarray,
    power: np.ndarray,
    noise: float,
    method: str,
    eps: float = 0.0,
    rng: np.random.Generator | None = None,
    *,
    cache: BeamformerCache | None = None,
    n_random: int = DEFAULT_RANDOMISATIONS,
    fast: FastSettings = FastSettings(),
    robust: RobustScaSettings = RobustScaSettings(),
    single_user_closed_form: bool = True,
) -> list[BeamformingResult]:
    """`design` for each channel array of hs (B, K, N, L) with one budget vector: the same
    results bit for bit (tests/beamforming/test_design_batch.py), each with its share of the
    batch's wall time as solve_time. The methods of BATCHED_METHODS (without random starts) run
    their SCA loops once for the whole batch (one group's channels in several fading states:
    the loops are numpy calls on small arrays, so one call for B problems costs little more than
    one); the others are designed one by one. Raises BeamformingError as `design` does.
    """
    hs = np.asarray(hs)
    if hs.ndim != 4:
        raise BeamformingError(f"hs: expected a (B, K, N, L) stack of channel arrays, got shape {hs.shape}")
    one = dict(
        cache=cache, n_random=n_random, fast=fast, robust=robust, single_user_closed_form=single_user_closed_form
    )
    batched = method in BATCHED_METHODS and fast.random_starts == 0 and len(hs) > 1
    if not batched or (hs.shape[1] == 1 and single_user_closed_form):
        return [design(h, power, noise, method, eps, rng, **one) for h in hs]
    checked = [validate(h, power, noise, eps) for h in hs]
    power, noise, eps = checked[0][1], checked[0][2], checked[0][3]
    out: list[BeamformingResult | None] = [None] * len(hs)
    todo = []
    keys: dict[int, bytes] = {}  # each channel's cache key, made once for the lookup and the store
    for i, (h, *_) in enumerate(checked):
        hit = None
        if cache is not None:
            keys[i] = cache.key(h, power, noise, method, eps)
            hit = _from_cache(cache, keys[i], h, power, noise, eps, method, time.perf_counter())
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if len(todo) < 2:
        for i in todo:
            out[i] = design(checked[i][0], power, noise, method, eps, rng, **one)
        return out  # type: ignore[return-value]
    start = time.perf_counter()
    rng = np.random.default_rng(0) if rng is None else rng
    sps = [scale_problem(checked[i][0], power, noise) for i in todo]
    if method == "robust":
        solved = robust_sca_batch(sps, eps, rng, fast, robust)
    else:
        design_eps = eps if method in ROBUST_DESIGNS else 0.0
        solved = [(v, iters) for v, _, iters in design_fast_batch(sps, rng, fast, design_eps)]
    results = [
        _finish(sp.to_watts(v), checked[i][0], power, noise, eps, method, "heuristic", None, iters, None, start)
        for i, sp, (v, iters) in zip(todo, sps, solved)
    ]
    share = (time.perf_counter() - start) / len(todo)
    for i, r in zip(todo, results):
        out[i] = dataclasses.replace(r, solve_time=share)
        if cache is not None:
            cache.put(keys[i], out[i])
    return out  # type: ignore[return-value]


@dataclass
class CachedDesigner:
    """`design` and `design_batch` sharing one BeamformerCache: the simulator's designer (its
    compiled cvxpy problems are reused across slots, which makes sdr/robust-sdp affordable).
    A `cache` argument of a call is ignored: the designer's own cache is used."""

    cache: BeamformerCache = field(default_factory=BeamformerCache)
    robust: RobustScaSettings = RobustScaSettings()  # the "robust" design's settings

    def __call__(self, h, power, noise, method, eps=0.0, rng=None, cache=None, **kwargs) -> BeamformingResult:
        return design(h, power, noise, method, eps, rng, cache=self.cache, robust=self.robust, **kwargs)

    def can_batch(self, method: str) -> bool:
        """Whether `batch` solves this method's designs together without drawing from the rng."""
        return method in BATCHED_METHODS

    def batch(self, hs, power, noise, method, eps=0.0, rng=None, **kwargs) -> list[BeamformingResult]:
        return design_batch(hs, power, noise, method, eps, rng, cache=self.cache, robust=self.robust, **kwargs)


def _design(
    h, power, noise, method, eps, rng, problems, n_random, fast, robust, single_user_closed_form, start
) -> BeamformingResult:
    k = h.shape[0]
    design_eps = eps if method in ROBUST_DESIGNS else 0.0
    if k == 1 and single_user_closed_form:
        w, _ = closed_form.single_user(h[0], power, noise, design_eps)
        return _finish(w, h, power, noise, eps, method, "closed-form", None, 0, None, start)
    if method == "mrt":
        return _finish(closed_form.mrt(h, power), h, power, noise, eps, method, "closed-form", None, 0, None, start)
    sp = scale_problem(h, power, noise)
    if method in ("fast", "fast-backoff", "fast-harq", "robust-fast"):
        v, _, iters = design_fast(sp, rng, fast, design_eps)
        return _finish(sp.to_watts(v), h, power, noise, eps, method, "heuristic", None, iters, None, start)
    if method == "robust":
        v, iters = robust_sca(sp, eps, rng, fast, robust)
        return _finish(sp.to_watts(v), h, power, noise, eps, method, "heuristic", None, iters, None, start)
    if method == "sdr":
        out = design_sdr(sp, problems.get("sdr", h.shape), n_random, rng)
        if out is not None:
            # SCA polish from the randomisation winner (plus the fast path's own starts): Gaussian
            # randomisation weakens as K grows (K=20: below the fast path alone), and the robust
            # designs keep robust-fast among their candidates, so both sides of a robust/non-robust
            # comparison get the same local refinement.
            v_pol, val_pol, _ = design_fast(sp, rng, fast, 0.0, extra_starts=[out.v])
            if val_pol > out.value:
                out.v, out.value = v_pol, val_pol
    else:  # robust-sdp
        # The robust-fast beamformer (milliseconds) joins the DC subspace and the candidates.
        v_fast, _, _ = design_fast(sp, rng, fast, eps)
        out = design_robust(sp, eps, problems, n_random, rng, extra=v_fast)
        if out is not None:  # the same SCA polish as sdr, on the worst-case margins
            v_pol, val_pol, _ = design_fast(sp, rng, fast, eps, extra_starts=[out.v])
            if val_pol > out.value:
                out.v, out.value = v_pol, val_pol
    if out is None:
        # Both conic solvers failed: fall back to the numpy designs and say so in the status.
        if method == "robust-sdp":
            v, iters = robust_sca(sp, eps, rng, fast, robust)
        else:
            v, _, iters = design_fast(sp, rng, fast, 0.0)
        return _finish(
            sp.to_watts(v), h, power, noise, eps, method, "fallback-fast: solvers failed", None, iters, None, start
        )
    return _finish(
        sp.to_watts(out.v),
        h,
        power,
        noise,
        eps,
        method,
        out.status,
        out.solver,
        out.iterations,
        out.upper_bound * sp.snr_unit,
        start,
    )


def robust_sca(
    sp: ScaledProblem,
    eps: float,
    rng: np.random.Generator,
    fast: FastSettings,
    settings: RobustScaSettings,
    extra_starts: list | None = None,
) -> tuple[np.ndarray, int]:
    """The "robust" design in normalised units: the SCA of robust_sca.py started from MRT,
    robust-fast's beamformer, the nominal (fast) design's for groups of more than TINY_GROUP
    users, and any extra_starts; returns (stacked beamformer, SCA steps). Never worse than
    robust-fast, which is one of the starts and is kept when nothing beats it."""
    k = sp.g.shape[0]
    fast = _start_settings(fast, settings)
    v_rfast, _, _ = design_fast(sp, rng, fast, eps)  # in full: the result is never worse than it
    # The nominal start pays off from about K = 6 on (up to 35 % more worst-case SNR at K = 20);
    # for K <= 3 it changed nothing measurable, and for K <= 6 ten of its steps do as well as 20.
    starts = [closed_form.mrt(sp.g.reshape(-1, sp.n_nodes, sp.n_antennas), sp.p).reshape(-1), v_rfast]
    if k > TINY_GROUP:
        nominal = fast if k > SMALL_GROUP else dataclasses.replace(fast, outer=min(fast.outer, 10))
        starts.append(design_fast(sp, rng, nominal, 0.0)[0])
    v, _, steps = design_robust_sca(sp, eps, np.asarray([*starts, *(extra_starts or [])]), settings)
    return v, steps


def _start_settings(fast: FastSettings, settings: RobustScaSettings) -> FastSettings:
    """The fast starts' settings: `settings.start_steps` caps their SCA steps (an approximation)."""
    if settings.start_steps is None:
        return fast
    return dataclasses.replace(fast, outer=min(fast.outer, settings.start_steps))


def robust_sca_batch(
    sps: list[ScaledProblem], eps: float, rng: np.random.Generator, fast: FastSettings, settings: RobustScaSettings
) -> list[tuple[np.ndarray, int]]:
    """`robust_sca` for problems of one shape and budgets (no extra starts), bit for bit: the
    fast designs and the SCA each run once for the batch."""
    k = sps[0].g.shape[0]
    fast = _start_settings(fast, settings)
    # The fast designs' starts (MRT and the dominant direction) are made once: both fast designs
    # and the SCA's MRT start get the same arrays as made anew (random starts, drawn per design
    # from the rng, are not shared).
    made = default_starts(sps, rng, fast)
    starts = [[st[0]] for st in made]  # st[0]: closed_form.mrt of the problem, stacked
    for st, (v_rfast, _, _) in zip(starts, design_fast_batch(sps, rng, fast, eps, starts=made)):
        st.append(v_rfast)
    shared = made if fast.random_starts == 0 else None
    if k > TINY_GROUP:
        nominal = fast if k > SMALL_GROUP else dataclasses.replace(fast, outer=min(fast.outer, 10))
        for st, (v_nom, _, _) in zip(starts, design_fast_batch(sps, rng, nominal, 0.0, starts=shared)):
            st.append(v_nom)
    solved = design_robust_sca_batch(sps, eps, np.asarray(starts), settings)
    return [(v, steps) for v, _, steps in solved]


def _from_cache(cache: BeamformerCache, key: bytes, h, power, noise, eps, method, start) -> BeamformingResult | None:
    """The cached design under `key`, re-evaluated on h as a fresh result (`cached=True`), or None."""
    hit = cache.get(key)
    if hit is None:
        return None
    return _finish(
        hit.w, h, power, noise, eps, method, hit.status, hit.solver, hit.iterations, hit.upper_bound, start, cached=True
    )


def _finish(
    w, h, power, noise, eps, method, status, solver, iterations, upper_bound, start, cached=False
) -> BeamformingResult:
    w = clip_to_budgets(np.asarray(w, dtype=np.complex128), power)
    snr = evaluate(w, h, noise)
    worst = worst_case_snr(w, h, noise, eps) if eps > 0 else snr
    guaranteed = worst if method in ROBUST_METHODS else snr
    return BeamformingResult(
        w=w,
        min_snr=float(np.min(guaranteed)),
        snr=snr,
        worst_snr=worst,
        method=method,
        eps=eps,
        status=status,
        solver=solver,
        solve_time=time.perf_counter() - start,
        iterations=int(iterations),
        upper_bound=upper_bound,
        cached=cached,
    )
