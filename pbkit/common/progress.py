"""Progress and console output that suit both a terminal and a log file.

On a terminal, long work draws rich progress bars on stderr. When stderr is not a terminal (CI,
`make demo > log`, a pipe), bars would print nothing until the end, so `Progress` prints plain
lines instead, at most one per task every `interval` seconds plus one when a task completes
(work shorter than `interval` prints nothing):

    training maasn: 120/400 (30 %), elapsed 1m 05s, about 2m 32s left

`Progress` takes the subset of `rich.progress.Progress`'s interface that pbkit uses (`add_task`,
`update`, `advance`, a context manager, `disable`, `transient`), so a command switches by changing
its import. `console()` gives a rich Console whose tables do not wrap at 80 columns when the
output is not a terminal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

DEFAULT_INTERVAL_S = 5.0
PLAIN_WIDTH = 250  # columns of tables and long lines when output is not a terminal


def console(stderr: bool = False) -> Any:
    """A rich Console on stdout (or stderr); wide enough not to wrap tables when not a terminal."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=PLAIN_WIDTH, soft_wrap=True)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _amount(value: float, unit: str) -> str:
    if unit == "B":
        from pbkit.common.sizes import format_size

        return format_size(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    started: float = 0.0
    last_line: float | None = None
    finished: bool = False


@dataclass
class _PlainLines:
    """Plain progress lines on a stream, rate-limited per task."""

    stream: TextIO
    interval: float
    unit: str
    clock: Callable[[], float]
    tasks: dict[int, _Task] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, description: str, total: float | None) -> int:
        with self.lock:
            task_id = len(self.tasks)
            self.tasks[task_id] = _Task(description, total, started=self.clock())
            return task_id

    def update(
        self, task_id: int, completed: float | None, total: float | None, advance: float | None, description: str | None
    ) -> None:
        with self.lock:
            task = self.tasks[task_id]
            if description is not None:
                task.description = description
            if total is not None:
                task.total = total
            if completed is not None:
                task.completed = completed
            if advance is not None:
                task.completed += advance
            now = self.clock()
            done = task.total is not None and task.total > 0 and task.completed >= task.total
            if done and not task.finished:
                task.finished = True
                if task.last_line is not None or now - task.started >= self.interval:
                    self._line(task, now)  # short work stays silent: no line at all
            elif not done and (
                task.last_line is None
                and now - task.started >= self.interval
                or task.last_line is not None
                and now - task.last_line >= self.interval
            ):
                self._line(task, now)

    def _line(self, task: _Task, now: float) -> None:
        task.last_line = now
        elapsed = now - task.started
        if task.total:
            frac = min(1.0, task.completed / task.total)
            text = (
                f"{task.description}: {_amount(task.completed, self.unit)}/{_amount(task.total, self.unit)} "
                f"({100 * frac:.0f} %), elapsed {_duration(elapsed)}"
            )
            if 0 < frac < 1:
                text += f", about {_duration(elapsed * (1 - frac) / frac)} left"
        else:
            text = f"{task.description}: {_amount(task.completed, self.unit)}, elapsed {_duration(elapsed)}"
        print(text, file=self.stream, flush=True)


class Progress:
    """Progress of long work: rich bars on a terminal, plain lines every `interval` s otherwise.

    `unit="B"` prints amounts as bytes (MB/GB) in plain lines and picks byte columns for the bars.
    `columns` (rich column objects) replace the default bar layout on a terminal.
    """

    def __init__(
        self,
        *columns: Any,
        console: Any = None,
        transient: bool = False,
        disable: bool = False,
        interval: float | None = None,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        **rich_options: Any,
    ) -> None:
        self._bar: Any = None
        self._plain: _PlainLines | None = None
        self._disabled = disable
        if disable:
            return
        if stream is None:
            from rich.console import Console

            console = console if console is not None else Console(stderr=True)
            if console.is_terminal:
                self._bar = _rich_progress(columns, console, transient, unit, rich_options)
                return
            stream = console.file
        # None: the module's DEFAULT_INTERVAL_S, read now (so a caller or a test can change it)
        self._plain = _PlainLines(stream, DEFAULT_INTERVAL_S if interval is None else interval, unit, clock)

    def __enter__(self) -> "Progress":
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **_: Any) -> int:
        if self._bar is not None:
            return self._bar.add_task(description, total=total, completed=completed)
        if self._plain is not None:
            task_id = self._plain.add(description, total)
            self._plain.tasks[task_id].completed = completed  # resumed work: no line until it moves on
            return task_id
        return 0

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **_: Any,
    ) -> None:
        if self._bar is not None:
            kwargs = {
                k: v
                for k, v in (
                    ("completed", completed),
                    ("total", total),
                    ("advance", advance),
                    ("description", description),
                )
                if v is not None
            }
            self._bar.update(task_id, **kwargs)
        elif self._plain is not None:
            self._plain.update(task_id, completed, total, advance, description)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)


def _rich_progress(columns: tuple[Any, ...], console: Any, transient: bool, unit: str, options: dict[str, Any]) -> Any:
    from rich import progress as rp

    if not columns:
        amount = (rp.DownloadColumn(), rp.TransferSpeedColumn()) if unit == "B" else (rp.MofNCompleteColumn(),)
        columns = (
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            *amount,
            rp.TimeElapsedColumn(),
            rp.TimeRemainingColumn(),
        )
    return rp.Progress(*columns, console=console, transient=transient, **options)


__all__ = ["Progress", "console", "DEFAULT_INTERVAL_S"]
