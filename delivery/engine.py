"""The experiment engine: independent cells run as Ray tasks, resumable, written as they finish.

A *cell* is one unit of work named by a JSON-able `params` dict (e.g. one grid point, policy
and seed). `run_cells` runs every cell not already finished in `out_dir` and records each result
the moment it arrives, so a sweep can be stopped at any point (Ctrl-C, kill -9, a lost machine)
and rerun with the same command: it loses at most the cells that were in flight.

    from delivery.engine import Cell, run_cells, ray_session

    def task(params: dict, shared: Any) -> dict:          # module-level, importable by workers
        ...                                               # returns a JSON-able dict
    cells = [Cell(params) for params in ...]              # key: digest of params (or give one)
    report = run_cells(cells, task, out_dir, shared=big_read_only_object,
                       workers=2, address=None, write=rewrite_my_tables, label="train")
    report.computed, report.skipped, report.results       # results: list in cell order

Contract:
* `task(params, shared)` must be a module-level function (Ray workers import it by name) and
  return a JSON-serialisable dict. `shared` (e.g. a PB library) is put into Ray's object store
  once and handed to every task.
* Finished cells are appended to `out_dir/cells.jsonl` (one line `{"key", "params", "result"}`,
  flushed and fsynced); a rerun skips every cell whose key is there. A truncated last line (a
  kill during the write) is ignored. Keys are digests of `params`, so put everything that
  changes the result (settings, seed, a digest of the inputs) into `params`; cells of other
  settings left in the file are simply not used.
* After each finished cell, and once at the end, `write(results)` is called with the results
  of the cells finished so far, in cell order (`list[CellResult]`): rewrite derived tables there,
  atomically (`pbkit.common.fs.atomic_write_text`). If nothing is left to compute, Ray is not started at all.
* Parallelism: with `address=None` Ray starts embedded on this machine with `workers` CPUs
  (default: all), dashboard off, logs quiet, and is shut down at the end; `address="HOST:PORT"`
  (or "auto") joins a running cluster, where `workers` bounds the tasks in flight. Workers on a
  cluster must have pbkit installed (the same version): tasks are imported by module name.
  `executor="inline"` runs the cells one by one in this process (no Ray), for tests of
  resumption and for callers that must not start Ray. Inside `ray_session(...)` several
  `run_cells` calls share one Ray start.
* Progress goes to stderr: a progress bar on a terminal, else a plain line every
  `progress_every_s` seconds and at the end.

Raises EngineError (a PbkitError) when out_dir cannot be written or a task fails; the cells
finished before the failure stay recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pbkit.errors import PbkitError

CELLS_FILE = "cells.jsonl"


class EngineError(PbkitError, RuntimeError):
    """The engine could not run or record a cell (Ray unreachable, a cell failed, the output
    cannot be written): a runtime failure, exit 1."""

    exit_code = 1


def params_key(params: dict[str, Any]) -> str:
    """Stable id of a cell: SHA-256 of its params as canonical JSON (sorted keys)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Cell:
    params: dict[str, Any]
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", params_key(self.params))


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    result: dict[str, Any]


@dataclass
class RunReport:
    total: int
    computed: int = 0
    skipped: int = 0
    results: list[CellResult] = field(default_factory=list)
    wall_s: float = 0.0


def read_finished(out_dir: Path) -> dict[str, dict[str, Any]]:
    """key -> result of every cell recorded in out_dir/cells.jsonl (a torn last line is skipped)."""
    path = Path(out_dir) / CELLS_FILE
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    with path.open() as fh:
        for line in fh:
            try:
                row = json.loads(line)
                done[row["key"]] = row["result"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # only a kill during the append leaves such a line, and only last
    return done


class _Recorder:
    """Appends finished cells to cells.jsonl, one fsynced line each."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / CELLS_FILE
        self.fh = self.path.open("a")
        # A torn line from a killed run must not glue onto the next record.
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            self.fh.write("\n")

    def add(self, cell: Cell, result: dict[str, Any]) -> None:
        self.fh.write(json.dumps({"key": cell.key, "params": cell.params, "result": result}) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


class _Progress:
    """A rich progress bar on a terminal; plain periodic lines otherwise."""

    def __init__(self, label: str, total: int, done: int, every_s: float):
        self.label, self.total, self.done, self.every_s = label, total, done, every_s
        self.start = self.last = time.monotonic()
        self.bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=done)

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        print(f"{self.label}: {self.done}/{self.total} cells, {now - self.start:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        else:
            self._line(time.monotonic())


@contextlib.contextmanager
def ray_session(workers: int | None = None, address: str | None = None) -> Iterator[None]:
    """Ray for the duration of the block: embedded locally with `workers` CPUs, or joined to
    the cluster at `address`. Reuses a Ray already initialised by the caller."""
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(
            include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True
        )
        if address is None:
            # "local": always a private instance, never whatever cluster another user started
            ray.init(address="local", num_cpus=workers or os.cpu_count(), **kwargs)
        else:
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise EngineError(f"--address {address}: cannot join the Ray cluster ({exc})") from None
        started = True
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _call(task: Callable[[dict[str, Any], Any], dict[str, Any]], params: dict[str, Any], shared: Any) -> dict[str, Any]:
    return task(params, shared)


def run_cells(
    cells: list[Cell],
    task: Callable[[dict[str, Any], Any], dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    shared: Any = None,
    workers: int | None = None,
    address: str | None = None,
    write: Callable[[list[CellResult]], None] | None = None,
    label: str = "cells",
    executor: str = "ray",
    progress_every_s: float = 10.0,
) -> RunReport:
    """Run every cell not yet finished in `out_dir`; see the module docstring for the contract.

    Raises EngineError on an unwritable out_dir, duplicate cell keys, a failing task or an
    unreachable cluster; ValueError on a bad `executor` or `workers`.
    """
    if executor not in ("ray", "inline"):
        raise ValueError(f"executor {executor!r} is not 'ray' or 'inline'")
    if workers is not None and workers < 1:
        raise ValueError(f"workers {workers} is not >= 1")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise EngineError(f"{out}: two cells have the same params (key)")
    start = time.perf_counter()
    finished = read_finished(out)
    results: dict[str, dict[str, Any]] = {c.key: finished[c.key] for c in cells if c.key in finished}
    todo = [c for c in cells if c.key not in results]
    report = RunReport(total=len(cells), skipped=len(results))

    def ordered() -> list[CellResult]:
        return [CellResult(c, results[c.key]) for c in cells if c.key in results]

    if todo:
        recorder = _Recorder(out)
        progress = _Progress(label, len(cells), len(results), progress_every_s)

        def finish(cell: Cell, result: dict[str, Any]) -> None:
            recorder.add(cell, result)
            results[cell.key] = result
            report.computed += 1
            progress.advance()
            if write is not None:
                write(ordered())

        try:
            if executor == "inline":
                for cell in todo:
                    finish(cell, task(cell.params, shared))
            else:
                with ray_session(workers, address):
                    _run_on_ray(todo, task, shared, workers, address, finish)
        finally:
            progress.close()
            recorder.close()
    report.results = ordered()
    if write is not None:
        write(report.results)
    report.wall_s = time.perf_counter() - start
    return report


def _run_on_ray(
    todo: list[Cell],
    task,
    shared: Any,
    workers: int | None,
    address: str | None,
    finish: Callable[[Cell, dict[str, Any]], None],
) -> None:
    import ray

    remote = ray.remote(num_cpus=1, max_retries=0)(_call)
    shared_ref = ray.put(shared)
    task_ref = ray.put(task)
    # Locally Ray itself runs at most `workers` tasks at once (num_cpus); on a cluster the
    # bound is kept here by submitting no more than `workers` at a time.
    limit = workers if (address is not None and workers) else len(todo)
    queue = list(todo)
    pending: dict[Any, Cell] = {}
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                cell = queue.pop(0)
                pending[remote.remote(task_ref, cell.params, shared_ref)] = cell
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    if isinstance(cause, PbkitError):
                        raise EngineError(f"cell {json.dumps(cell.params, sort_keys=True)[:200]}: {cause}") from None
                    raise EngineError(
                        f"cell {json.dumps(cell.params, sort_keys=True)[:200]}: {type(cause).__name__}: {cause}"
                    ) from None
                finish(cell, result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
