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


def _load_script(name: str):
    import importlib.util
    import sys

    key = f"perface_{name}_script"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


@pytest.fixture(scope="session")
def script():
    """``script(name)``: ``scripts/<name>.py`` as a module (scripts are not a package), loaded once per session."""
    return _load_script


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
