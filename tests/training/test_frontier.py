"""scripts/frontier.py's arithmetic: weight interpolation with the base model and the mixed-similarity embedding."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("perface_frontier_script", REPO / "scripts" / "frontier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_interpolation_runs_from_the_base_through_the_checkpoint(frontier):
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(3, 4, generator=g), "steps": torch.tensor(7)}
    trained = {"w": torch.randn(3, 4, generator=g), "steps": torch.tensor(9)}
    torch.testing.assert_close(frontier.interpolate(base, trained, 0.0)["w"], base["w"])
    torch.testing.assert_close(frontier.interpolate(base, trained, 1.0)["w"], trained["w"])
    half = frontier.interpolate(base, trained, 0.5)
    torch.testing.assert_close(half["w"], (base["w"] + trained["w"]) / 2)
    beyond = frontier.interpolate(base, trained, 1.5)["w"]
    torch.testing.assert_close(beyond - trained["w"], (trained["w"] - base["w"]) / 2)  # extrapolated past it
    assert half["steps"].item() == 9  # integer buffers are taken from the checkpoint, not averaged


def test_mixed_embeddings_give_the_mixed_cosine(frontier):
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    base, model = unit(rng.normal(size=(6, 128))), unit(rng.normal(size=(6, 64)))
    for w in (0.0, 0.3, 1.0):
        joint = frontier.mixed_embeddings(base, model, w)
        np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(joint @ joint.T, (1 - w) * base @ base.T + w * model @ model.T, atol=1e-12)
