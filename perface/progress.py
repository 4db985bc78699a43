"""Progress bars (rich, on stderr): the one place they are set up, for the library and the command line.

Bars are transient (they vanish when done) and shown only when enabled: by default when stderr is a terminal,
so logs and tests stay clean.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
#: ``(label, total) -> advance``: starts one bar and returns the function that advances it by n.
ProgressFactory = Callable[[str, int], Callable[[int], None]]

__all__ = ["ProgressFactory", "bars", "progress_enabled", "track"]


def progress_enabled(enabled: bool | None = None) -> bool:
    """``enabled`` if given, else whether stderr is a terminal."""
    if enabled is not None:
        return bool(enabled)
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True, console=Console(stderr=True))


@contextmanager
def bars(enabled: bool | None = None) -> Iterator[ProgressFactory]:
    """A context giving a :data:`ProgressFactory`: one bar per phase of a job (embedding per model, ...).

    Example::

        with bars() as bar:
            advance = bar("embedding base", len(files))
            ...; advance(1)
    """
    progress = _progress(progress_enabled(enabled))
    with progress:
        def factory(label: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(label, total=total)
            return lambda n=1: progress.advance(task, n)

        yield factory


def track(iterable: Iterable[T], description: str, total: int | None = None,
          enabled: bool | None = None) -> Iterator[T]:
    """Iterate with one bar (see :func:`bars`)."""
    if not progress_enabled(enabled):
        yield from iterable
        return
    if total is None:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    with bars(True) as bar:
        advance = bar(description, total or 0)
        for item in iterable:
            yield item
            advance(1)
