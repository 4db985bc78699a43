"""Shared LFW fixtures for the selection tests (built once per session; embeddings go through the embedding
cache, so the CLI tests reuse them).

Gallery: the first 150 LFW identities (sorted by name) with at least 3 images, images 1 and 2 of each, gender
from ``lfw/gender.csv`` as attribute. Targets: image 3 of the first 40 gallery identities (their own identity is
in the gallery) and image 1 of the first 20 identities with a single LFW image (not in the gallery).

Threshold: measured by the real code path (:func:`reid_threshold`) at FAR 1e-3, but on a pairs CSV made of the
gallery images (150 same-person pairs, all ~44,700 different-person pairs) instead of LFW pairs.txt, so no
extra image is embedded; the value lands close to the full LFW measurement (0.922 for base).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_GALLERY = 150
N_OWN_TARGETS = 40
N_OTHER_TARGETS = 20


def lfw_files(lfw: Path, name: str, k: int) -> str:
    return str(lfw / "images" / name / f"{name}_{k:04d}.jpg")


@pytest.fixture(scope="session")
def lfw_split(lfw):
    people = sorted(os.listdir(lfw / "images"))
    counts = {p: len(os.listdir(lfw / "images" / p)) for p in people}
    gallery_ids = [p for p in people if counts[p] >= 3][:N_GALLERY]
    singles = [p for p in people if counts[p] == 1][:N_OTHER_TARGETS]
    return {
        "gallery_ids": gallery_ids,
        "gallery_images": [lfw_files(lfw, p, k) for p in gallery_ids for k in (1, 2)],
        "own_targets": [lfw_files(lfw, p, 3) for p in gallery_ids[:N_OWN_TARGETS]],
        "other_targets": [lfw_files(lfw, p, 1) for p in singles],
        "labels": str(lfw / "gender.csv"),
    }


@pytest.fixture(scope="session")
def base_model():
    import perface

    return perface.load("base")


@pytest.fixture(scope="session")
def head_model_path(tmp_path_factory):
    """A perceptual model that differs from the identity model: dlib backbone + seeded random 64-d head that
    weighs a few backbone dimensions much more than the rest (so its similarities really differ)."""
    import torch

    from perface.model import PerFace

    torch.manual_seed(0)
    model = PerFace(head_dim=64, name="random-head")
    with torch.no_grad():
        weight = torch.randn(64, 128) * torch.exp(-torch.arange(128.0) / 8)[torch.randperm(128)]
        model.head.weight.copy_(weight)
    return model.save(tmp_path_factory.mktemp("models") / "random_head.pt")


@pytest.fixture(scope="session")
def head_model(head_model_path):
    import perface

    return perface.load(head_model_path)


@pytest.fixture(scope="session")
def gallery_pairs_csv(lfw_split, tmp_path_factory):
    """Pairs CSV over the gallery images (see the module docstring), paths absolute."""
    ids = lfw_split["gallery_ids"]
    imgs = lfw_split["gallery_images"]
    owner = np.repeat(np.arange(len(ids)), 2)
    rows = [(imgs[2 * i], imgs[2 * i + 1], 1) for i in range(len(ids))]
    a, b = np.triu_indices(len(imgs), 1)
    diff = owner[a] != owner[b]
    rows += [(imgs[i], imgs[j], 0) for i, j in zip(a[diff], b[diff])]
    path = tmp_path_factory.mktemp("pairs") / "gallery_pairs.csv"
    pd.DataFrame(rows, columns=["a", "b", "same"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def threshold(base_model, gallery_pairs_csv):
    from perface.selection import reid_threshold

    return reid_threshold(base_model, far=1e-3, pairs=gallery_pairs_csv, root="/")


@pytest.fixture(scope="session")
def gallery_base(lfw_split, base_model, threshold):
    from perface.selection import Gallery

    return Gallery.build(lfw_split["gallery_images"], base_model, base_model, labels=lfw_split["labels"],
                         max_identity_sim=threshold)


@pytest.fixture(scope="session")
def gallery_head(lfw_split, head_model, base_model, threshold, head_model_path):
    from perface.selection import Gallery

    return Gallery.build(lfw_split["gallery_images"], head_model, base_model, labels=lfw_split["labels"],
                         max_identity_sim=threshold, model_source=str(head_model_path))


def _targets(lfw_split, model, identity_model):
    from perface.selection import embed_targets

    images = lfw_split["own_targets"] + lfw_split["other_targets"]
    targets, failures = embed_targets(images, model, identity_model, labels=lfw_split["labels"])
    assert len(targets) >= len(images) - 3, failures
    return targets


@pytest.fixture(scope="session")
def targets_base(lfw_split, base_model):
    return _targets(lfw_split, base_model, base_model)


@pytest.fixture(scope="session")
def targets_head(lfw_split, head_model, base_model):
    return _targets(lfw_split, head_model, base_model)
