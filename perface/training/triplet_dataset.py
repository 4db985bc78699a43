"""Triplets of cached chips as a torch Dataset."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


#: Keys of augmented views start here: view ``v`` of image ``j`` is ``j + (v + 1) * VIEW_STRIDE``.
VIEW_STRIDE = 1 << 32


def mirror_key(key):
    """Cache key of the mirror image of the chip with key ``key`` (an involution: ``-key - 1``)."""
    return -key - 1


def mirror_chips(chips: torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S, 3) chips mirrored left-right (the width axis reversed), as the items' ``flip`` does."""
    return torch.flip(chips, dims=[2])


#: Keys of reference images (:class:`TripletDataset`'s ``reference``) start here: reference image ``r`` is
#: ``REFERENCE_START + r``, far below every mirror key (``-j - 1``).
REFERENCE_START = -(1 << 48)


def reference_key(index):
    """Cache key of reference image ``index`` (0-based; disjoint from the training images' keys, their
    mirrors and views)."""
    return REFERENCE_START + index


def view_key(index, view):
    """Cache key of the fixed augmented view ``view`` (0-based) of image ``index`` (disjoint from the image
    keys, their mirrors and other views)."""
    return index + (view + 1) * VIEW_STRIDE


class TripletDataset(Dataset):
    """Items of a triplet table over an in-memory chip array, as uint8 chips.

    Items stay uint8 (a quarter of float32's bytes to collate and move); the module normalises the chips it
    runs through a network (:meth:`Preprocessing.normalize_tensor`), which with cached frozen features is only the
    chips it has not seen yet.

    Args:
        index: int64 (T, 3) rows of (anchor, a, b) image indices into ``chips``.
        p_a: float32 (T,) share of judges who found ``a`` more similar to the anchor.
        chips: uint8 (N_images, S, S, 3) RGB chips.
        augment: Optional callable ``image=uint8 chip -> {"image": chip}`` (albumentations), applied per image.
        flip: Probability of mirroring each image (drawn independently per image). Unlike ``augment`` this
            leaves only two versions of a chip, so the model can still cache features per version.
        strata: Optional int64 (T,) stratum code per triplet (-1: none), passed through for per-stratum
            validation.
        views: Optional uint8 (K, N_images, S, S, 3) fixed augmented copies of every chip (drawn once, so the
            model can cache their features too). Each item then adds one of its anchor's K views, drawn at
            random: the same face under another light, crop or orientation.
        reference: Optional uint8 (R, S, S, 3) chips of unlabelled reference images. Each item then adds one
            of them, drawn at random, for the module's ``reference_weight`` term (its embedding is held at the
            base model's).

    Each item is a dict: ``chips`` uint8 (3, S, S, 3) RGB (anchor, a, b), ``ids`` int64 (3,) chip keys
    (the image index ``j``, or ``mirror_key(j) = -j - 1`` for its mirror image), ``p_a`` float32 scalar,
    ``stratum`` int64 scalar when ``strata`` is given, and with ``views`` ``view`` uint8 (S, S, 3) and
    ``view_id`` int64 scalar (:func:`view_key`), and with ``reference`` ``reference`` uint8 (S, S, 3) and
    ``reference_id`` int64 scalar (:func:`reference_key`).
    """

    def __init__(self, index: np.ndarray, p_a: np.ndarray, chips: np.ndarray, augment: Callable | None = None,
                 flip: float = 0.0, strata: np.ndarray | None = None,
                 views: np.ndarray | None = None, reference: np.ndarray | None = None):
        self.index = np.asarray(index, dtype=np.int64)
        self.p_a = np.asarray(p_a, dtype=np.float32)
        self.chips = chips
        self.augment = augment
        self.flip = float(flip)
        self.strata = None if strata is None else np.asarray(strata, dtype=np.int64)
        self.views = views
        self.reference = reference

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        ids = self.index[i].copy()
        chips = [self.chips[j] for j in ids]
        if self.flip > 0:
            for k in np.flatnonzero(np.random.random(len(ids)) < self.flip):
                chips[k] = chips[k][:, ::-1]  # as mirror_chips
                ids[k] = mirror_key(ids[k])
        if self.augment is not None:
            chips = [self.augment(image=c)["image"] for c in chips]
        item = {"chips": torch.from_numpy(np.stack(chips)), "ids": torch.from_numpy(ids), "p_a": torch.tensor(self.p_a[i])}
        if self.strata is not None:
            item["stratum"] = torch.tensor(self.strata[i])
        if self.views is not None:
            j, v = int(self.index[i, 0]), int(np.random.randint(len(self.views)))
            item["view"] = torch.from_numpy(self.views[v, j])
            item["view_id"] = torch.tensor(view_key(j, v))
        if self.reference is not None:
            r = int(np.random.randint(len(self.reference)))
            item["reference"] = torch.from_numpy(self.reference[r])
            item["reference_id"] = torch.tensor(reference_key(r))
        return item
