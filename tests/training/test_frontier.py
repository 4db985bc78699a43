"""scripts/frontier.py's arithmetic: weight interpolation with the base model and the mixed-similarity embedding."""

import numpy as np
import pytest
import torch

@pytest.fixture(scope="module")
def frontier(script):
    return script("frontier")


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
    extra = {**base, "base_top.w": torch.ones(2)}  # a training module's frozen copy the checkpoint lacks
    torch.testing.assert_close(frontier.interpolate(extra, trained, 1.0)["base_top.w"], torch.ones(2))


def test_a_checkpoint_of_another_model_is_a_one_line_error(frontier, tmp_path):
    base = {"model.w": torch.zeros(3, 4), "model.b": torch.zeros(4), "base_top.w": torch.zeros(3, 4)}
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(3, 4), "model.b": torch.ones(4)}}, good)
    assert set(frontier.trained_state(good, base, "cfg.yaml")) == {"model.w", "model.b"}  # base_top: not needed
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(5, 4), "model.b": torch.ones(4)}}, other)
    with pytest.raises(SystemExit, match=r"other.ckpt was not fine-tuned from the model of cfg.yaml .*model.w"):
        frontier.trained_state(other, base, "cfg.yaml")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(SystemExit, match=r"junk.ckpt: not a Lightning checkpoint"):
        frontier.trained_state(junk, base, "cfg.yaml")


def test_bad_command_lines_fail_before_any_work(frontier, tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"missing.ckpt: no such checkpoint"):
        frontier.main([str(tmp_path / "missing.ckpt")])
    with pytest.raises(SystemExit) as exit_info:
        frontier.main([str(tmp_path / "missing.ckpt"), "--mix", "0.5,1.5"])
    assert exit_info.value.code == 2 and "mixture weights must lie in [0, 1], got 0.5,1.5" in capsys.readouterr().err


def test_mixed_embeddings_give_the_mixed_cosine(frontier):
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    base, model = unit(rng.normal(size=(6, 128))), unit(rng.normal(size=(6, 64)))
    for w in (0.0, 0.3, 1.0):
        joint = frontier.mixed_embeddings(base, model, w)
        np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(joint @ joint.T, (1 - w) * base @ base.T + w * model @ model.T, atol=1e-12)


def test_lfw_distribution_separates_same_and_different_people(frontier):
    import pandas as pd

    # two people, two photos each, on a circle: same-person photos 10 degrees apart, the people 90 degrees
    angles = np.radians([0, 10, 90, 100])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    names = ["ann/1.jpg", "ann/2.jpg", "bob/1.jpg", "bob/2.jpg"]
    pairs = pd.DataFrame({"a": ["ann/1.jpg", "bob/1.jpg", "ann/1.jpg"], "b": ["ann/2.jpg", "bob/2.jpg", "bob/1.jpg"],
                          "same": [True, True, False]})
    lfw = object.__new__(frontier.sweep.LfwDev)  # the pairs without reading LFW's images
    lfw.index = {n: i for i, n in enumerate(names)}
    lfw.identity = np.array([n.split("/")[0] for n in names])
    lfw.train, lfw.test = pairs, pairs.iloc[:0]
    d = frontier.lfw_distribution(lfw, emb)
    np.testing.assert_allclose(d["genuine_p05"], np.cos(np.radians(10)))  # both same-person pairs: 10 degrees
    impostor = np.cos(np.radians([90, 100, 80, 90]))  # the four different-person pairs, never the same-person ones
    np.testing.assert_allclose(d["impostor_mean"], impostor.mean(), atol=1e-12)
    np.testing.assert_allclose(d["threshold_far1e-3"], np.quantile(impostor, 1 - 1e-3))
