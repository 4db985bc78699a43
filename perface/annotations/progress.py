"""Progress bars (rich, on stderr) for long annotation work; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

__all__ = ["track", "progress_enabled"]


def progress_enabled(enabled: bool | None = None) -> bool:
    """``enabled`` if given, else whether stderr is a terminal."""
    if enabled is not None:
        return enabled
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def track(iterable: Iterable[T], description: str, total: int | None = None,
          enabled: bool | None = None) -> Iterator[T]:
    """Iterate with a transient rich progress bar on stderr when enabled."""
    if not progress_enabled(enabled):
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, console=Console(stderr=True),
                          transient=True)
