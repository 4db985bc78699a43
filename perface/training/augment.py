"""Augmentation of aligned chips with albumentations (photometric + small geometric).

Each image of a triplet is augmented by its own call, so flips and colour changes are drawn independently.
"""

from __future__ import annotations

import albumentations as A
import cv2


def chip_augmentation(strength: float = 1.0) -> A.Compose:
    """Augmentation for uint8 (S, S, 3) chips; ``strength`` scales every magnitude (0 disables)."""
    s = float(strength)
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(1 - 0.05 * s, 1 + 0.05 * s), translate_percent=(-0.03 * s, 0.03 * s),
                 rotate=(-6 * s, 6 * s), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2 * s, contrast_limit=0.2 * s, p=0.5),
        A.HueSaturationValue(hue_shift_limit=int(4 * s), sat_shift_limit=int(15 * s), val_shift_limit=0, p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.ImageCompression(quality_range=(60, 95))], p=0.2 * min(s, 1)),
        A.ToGray(p=0.05),
    ])
