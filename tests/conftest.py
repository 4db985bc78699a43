"""Shared fixtures. Real images come from ``$PERFACE_DATA`` (default: ``../shared/data`` beside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("PERFACE_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "lfw").is_dir():
        pytest.fail(f"test data not found at {root}: set PERFACE_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def lfw(data_root) -> Path:
    return data_root / "lfw"


@pytest.fixture(scope="session")
def photos(data_root) -> Path:
    return data_root / "photos" / "images"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the user's cache untouched unless PERFACE_CACHE is set explicitly (CI sets it to reuse work)."""
    if not os.environ.get("PERFACE_CACHE"):
        os.environ["PERFACE_CACHE"] = str(tmp_path_factory.mktemp("perface-cache"))
    yield
