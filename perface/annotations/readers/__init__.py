"""Readers of annotation-tool exports. Each yields :class:`RawRecord` objects; :mod:`perface.annotations.ingest`
checks them and sorts them into accepted judgments and rejects."""

from __future__ import annotations

from perface.annotations.readers.avfs import read_avfs
from perface.annotations.readers.generic import read_generic
from perface.annotations.readers.label_studio import read_label_studio
from perface.annotations.readers.mturk import read_mturk
from perface.annotations.readers.record import RawRecord

#: ``--format`` name -> reader function ``(path, **options) -> Iterator[RawRecord]``.
READERS = {
    "generic": read_generic,
    "avfs": read_avfs,
    "label-studio": read_label_studio,
    "mturk": read_mturk,
}

__all__ = ["READERS", "RawRecord", "read_avfs", "read_generic", "read_label_studio", "read_mturk"]
