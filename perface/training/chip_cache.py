"""Aligned face chips computed once and kept on disk, so training epochs never re-run detection.

Each chip is stored as ``<cache>/chips/<setting key>/<sha[:2]>/<sha256 of the image file>.npy`` where the
setting key is :func:`perface.cache.cache_key` of the preprocessing (template, size, padding) and the face
options (detector, upsampling, which face, no-face policy). Images that yield no chip are recorded with the
reason in ``failures.json`` beside them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from perface.cache import cache_dir, cache_key, file_sha256
from perface.errors import SettingsError
from perface.face.batch import align_many
from perface.preprocessing import FaceOptions, Preprocessing



class ChipCache:
    """Disk cache of uint8 (size, size, 3) RGB chips.

    Args:
        preprocessing: The model's preprocessing (chip geometry).
        options: How faces are found and chosen, including the no-face policy (``"whole-image"`` suits tight
            crops); one face per image, so ``face="all"`` is refused.
        cache: Cache root (default: :func:`perface.cache.cache_dir`).

    Raises:
        SettingsError: ``face="all"`` (before any image is read).
    """

    def __init__(self, preprocessing: Preprocessing, options: FaceOptions, cache: str | os.PathLike | None = None):
        if options.face == "all":
            raise SettingsError("the chip cache keeps one face per image; face 'all' is not possible here")
        self.preprocessing = preprocessing
        self.options = options
        self.key = cache_key(preprocessing, options)[:16]
        self.dir = cache_dir(cache) / "chips" / self.key
        self._digest: dict[str, str] = {}

    def digest(self, path: str | os.PathLike) -> str:
        key = os.fspath(path)
        if key not in self._digest:
            self._digest[key] = file_sha256(key)
        return self._digest[key]

    def chip_path(self, path: str | os.PathLike) -> Path:
        d = self.digest(path)
        return self.dir / d[:2] / f"{d}.npy"

    def _failures(self) -> dict[str, str]:
        f = self.dir / "failures.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    def prepare(self, paths: Iterable[str | os.PathLike], workers: int = 2,
                progress: Callable[[int], None] | None = None) -> dict[str, str]:
        """Compute the chips that are not cached yet.

        Returns:
            ``{path: reason}`` for every image that has no chip (now or from an earlier run).
        """
        paths = list(dict.fromkeys(os.fspath(p) for p in paths))
        failures = self._failures()
        todo, failed = [], {}
        for p in paths:
            try:
                d = self.digest(p)
            except OSError as exc:
                failed[p] = f"cannot read {p}: {exc.strerror or exc}"
                continue
            if d in failures:
                failed[p] = failures[d]
            elif not self.chip_path(p).is_file():
                todo.append(p)
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, aligned, exc in align_many(todo, self.preprocessing, self.options, workers=workers):
            if exc is not None or not aligned:
                reason = str(exc) if exc is not None else f"no face found in {name}"
                failed[name] = reason
                failures[self.digest(name)] = reason
            else:
                target = self.chip_path(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(f".tmp{os.getpid()}.npy")
                np.save(tmp, aligned[0].chip)
                os.replace(tmp, target)
            if progress:
                progress(1)
        (self.dir / "failures.json").write_text(json.dumps(failures, indent=0, sort_keys=True))
        return failed

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """The cached chip of ``path`` (call :meth:`prepare` first)."""
        return np.load(self.chip_path(path))
