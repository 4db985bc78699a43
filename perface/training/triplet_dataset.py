"""Triplets of cached chips as a torch Dataset."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from perface.preprocessing import Preprocessing


class TripletDataset(Dataset):
    """Items of a triplet table over an in-memory chip array.

    Args:
        index: int64 (T, 3) rows of (anchor, a, b) image indices into ``chips``.
        p_a: float32 (T,) share of judges who found ``a`` more similar to the anchor.
        chips: uint8 (N_images, S, S, 3) RGB chips.
        preprocessing: Normalisation (the model's own: :meth:`Preprocessing.normalize`).
        augment: Optional callable ``image=uint8 chip -> {"image": chip}`` (albumentations), applied per image.

    Each item is a dict: ``images`` float32 (3, 3, S, S) (anchor, a, b), ``ids`` int64 (3,) image indices,
    ``p_a`` float32 scalar.
    """

    def __init__(self, index: np.ndarray, p_a: np.ndarray, chips: np.ndarray, preprocessing: Preprocessing,
                 augment: Callable | None = None):
        self.index = np.asarray(index, dtype=np.int64)
        self.p_a = np.asarray(p_a, dtype=np.float32)
        self.chips = chips
        self.preprocessing = preprocessing
        self.augment = augment

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        ids = self.index[i]
        chips = [self.chips[j] for j in ids]
        if self.augment is not None:
            chips = [self.augment(image=c)["image"] for c in chips]
        images = self.preprocessing.normalize(np.stack(chips))
        return {"images": torch.from_numpy(images), "ids": torch.from_numpy(ids.copy()),
                "p_a": torch.tensor(self.p_a[i])}
