"""One answer as a reader found it in a tool's export, before ingest checks it.

Readers yield :class:`RawRecord` objects, one per human answer (an AVFS odd-one-out answer yields two: one
per kept face as anchor). A record a reader already knows is bad carries a ``reason`` (a rejects-file code)
and ``detail``; ingest checks the rest and sorts every record into accepted or rejected, so that
``read = accepted + rejected`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RawRecord"]


@dataclass
class RawRecord:
    """One answer from an export, paths and choice still as the tool wrote them."""

    file: str
    location: str  # "line 12", "task 7 annotation 3", "set '0' question 4 anchor 1"
    anchor: Any = None
    a: Any = None
    b: Any = None
    choice: Any = None  # 'a' / 'b' when the reader could map it; raw value otherwise
    annotator_id: Any = None
    response_ms: float | None = None
    timestamp: str | None = None
    is_gold: bool = False
    gold_choice: str | None = None
    split: str | None = None
    source: str | None = None
    raw: Any = None  # the record as found (dict / list / str), written to the rejects file
    reason: str | None = None  # set when the reader already rejects it
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def reject(self, reason: str, detail: str) -> "RawRecord":
        self.reason = reason
        self.detail = detail
        return self
