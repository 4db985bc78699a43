"""Fixtures for the annotation tests: a small dataset root of real face images (symlinks, never copies)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def utk_labels(data_root) -> pd.DataFrame:
    return pd.read_csv(data_root / "utkface" / "labels.csv")


@pytest.fixture()
def face_root(tmp_path, data_root, utk_labels) -> tuple[Path, list[str]]:
    """A dataset root ``tmp/root`` with ``faces/f00.jpg`` .. ``faces/f11.jpg`` linking to real UTKFace images."""
    root = tmp_path / "root"
    (root / "faces").mkdir(parents=True)
    names = []
    for i, rel in enumerate(utk_labels["path"].iloc[::400].head(12)):
        name = f"faces/f{i:02d}.jpg"
        os.symlink(data_root / "utkface" / rel, root / name)
        names.append(name)
    return root, names


@pytest.fixture(scope="session")
def base_model():
    import perface

    return perface.load("base")
