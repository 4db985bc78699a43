"""Attribute probes on real UTKFace embeddings (300 images) and on synthetic data."""

import numpy as np
import pandas as pd
import pytest

import perface
from perface.evaluation.attributes import probe_attributes, probe_categorical, probe_numeric
from perface.evaluation.embedding_cache import embed_paths


@pytest.fixture(scope="module")
def utk(data_root):
    """Every 25th UTKFace image (198) embedded whole (tight crops) by the base model; cached for the session."""
    root = data_root / "utkface"
    labels = pd.read_csv(root / "labels.csv", dtype=str).iloc[::25].reset_index(drop=True)
    results = embed_paths(perface.load("base"), [str(root / p) for p in labels["path"]], on_no_face="whole-image")
    assert all(r.status == "ok" for r in results)
    return np.stack([r.embedding for r in results]), labels


def test_probes_beat_chance_on_utkface(utk):
    x, labels = utk
    res = probe_attributes(x, labels)
    assert set(res) == {"age", "gender", "race"}
    g = res["gender"]
    assert g["kind"] == "classification" and g["n"] == len(labels) and g["folds"] == 5
    assert g["balanced_accuracy"] > 0.75 and g["accuracy"] > g["chance_majority"] + 0.15
    assert 0 < g["balanced_accuracy_std"] < 0.1
    assert res["race"]["balanced_accuracy"] > res["race"]["chance_balanced"] + 0.15
    a = res["age"]
    assert a["kind"] == "regression" and a["mae"] < 0.8 * a["baseline_mae"]


def test_shuffled_labels_give_chance(utk):
    x, labels = utk
    shuffled = labels.copy()
    shuffled["gender"] = np.random.default_rng(0).permutation(shuffled["gender"].to_numpy())
    g = probe_attributes(x, shuffled, columns=["gender"])["gender"]
    assert abs(g["balanced_accuracy"] - 0.5) < 0.1


def test_rare_classes_dropped_and_reported():
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 50 + ["b"] * 50 + ["c"] * 3)
    x = rng.normal(size=(len(y), 8)) + (y == "a")[:, None]
    res = probe_categorical(x, y)
    assert res["dropped_classes"] == {"c": 3} and res["n"] == 100 and set(res["classes"]) == {"a", "b"}


def test_numeric_probe_recovers_linear_signal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    age = 40 + 10 * x[:, 0] + rng.normal(size=400)
    res = probe_numeric(x, age)
    assert res["mae"] < 1.2 and res["baseline_mae"] > 6


def test_column_selection_and_skips():
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({"path": [f"{i}.jpg" for i in range(120)], "identity": [f"p{i}" for i in range(120)],
                           "gender": ["m", "f"] * 60, "empty": [""] * 120})
    x = rng.normal(size=(120, 4))
    res = probe_attributes(x, labels)
    assert res["identity"]["kind"] == "skipped" and "distinct values" in res["identity"]["reason"]
    assert res["empty"]["kind"] == "skipped"
    assert set(probe_attributes(x, labels, columns=["gender"])) == {"gender"}
    with pytest.raises(ValueError, match="embeddings"):
        probe_attributes(x[:5], labels)
