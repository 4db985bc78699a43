"""Verification metrics against scikit-learn, the 10-fold protocol, and pairs-file parsing."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from perface.evaluation.verification import (
    PairsFormatError,
    best_threshold,
    equal_error_rate,
    fold_accuracy,
    read_lfw_pairs,
    read_pairs,
    read_pairs_csv,
    tar_at_far,
    threshold_at_far,
    verification_metrics,
)


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    same = rng.random(6000) < 0.5
    sims = rng.normal(size=6000) + 2.0 * same
    return sims, same


@pytest.mark.parametrize("far", [1e-1, 1e-2, 1e-3])
def test_tar_at_far_matches_sklearn_roc(scores, far):
    sims, same = scores
    fpr, tpr, _ = roc_curve(same, sims, drop_intermediate=False)
    assert tar_at_far(sims, same, far) == pytest.approx(tpr[fpr <= far].max())
    t = threshold_at_far(sims, same, far)
    neg = sims[~same]
    assert np.mean(neg >= t) <= far
    assert np.mean(neg >= neg[neg < t].max()) > far  # any lower threshold accepts one more: too many


def test_threshold_at_far_by_hand():
    sims = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
    same = np.array([False, False, False, False, False, True])
    assert threshold_at_far(sims, same, 0.0) == np.nextafter(0.9, np.inf)  # no false accepts
    assert threshold_at_far(sims, same, 0.2) == np.nextafter(0.8, np.inf)  # one false accept of five
    assert threshold_at_far(sims, same, 0.39) == np.nextafter(0.8, np.inf)
    assert threshold_at_far(sims, same, 1.0) == -np.inf
    with pytest.raises(ValueError):
        threshold_at_far(sims, np.ones(6, bool), 0.1)


def test_auc_and_eer(scores):
    sims, same = scores
    m = verification_metrics(sims, same)
    assert m["auc"] == pytest.approx(roc_auc_score(same, sims))
    eer, t = equal_error_rate(sims, same)
    far = np.mean(sims[~same] >= t)
    frr = np.mean(sims[same] < t)
    assert eer == pytest.approx(far, abs=2e-3) and eer == pytest.approx(frr, abs=2e-3)
    # two unit-variance normals 2 apart: EER = Phi(-1) = 0.1587
    assert eer == pytest.approx(0.1587, abs=0.015)
    assert set(m["tar_at_far"]) == {"1e-02", "1e-03"}
    assert m["n_pairs"] == 6000 and m["n_folds"] == 10


def test_best_threshold_by_hand():
    sims = np.array([0.1, 0.2, 0.6, 0.9, 0.3])
    same = np.array([False, False, True, True, True])
    # 0.3 is a same pair below 0.6: the best cut is between 0.2 and 0.3 (all correct)
    assert best_threshold(sims, same) == pytest.approx(0.25)


def test_ten_fold_threshold_comes_from_the_other_folds():
    """Fold 0's same pairs sit at 0.45, below the cut the other nine folds pick (0.5): held out, fold 0
    scores 0.5 even though a threshold fitted on fold 0 itself would score 1.0."""
    folds = np.repeat(np.arange(10), 20)
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 10)
    sims = np.where(same, 0.8, 0.2)
    sims[(folds == 0) & same] = 0.45
    res = fold_accuracy(sims, same, folds)
    assert res["per_fold"][0] == 0.5
    assert res["thresholds"][0] == pytest.approx(0.5)
    assert res["per_fold"][1:] == [1.0] * 9
    assert res["mean"] == pytest.approx(0.95)
    assert res["std"] == pytest.approx(np.std([0.5] + [1.0] * 9))


def test_lfw_pairs_txt(lfw):
    pairs = read_lfw_pairs(lfw / "pairs.txt")
    f = pairs.frame
    assert len(f) == 6000 and pairs.protocol_folds
    assert f.groupby("fold")["same"].agg(["sum", "count"]).values.tolist() == [[300, 600]] * 10
    first = (lfw / "pairs.txt").read_text().splitlines()[1].split()
    assert f.loc[0, "a"] == f"{first[0]}/{first[0]}_{int(first[1]):04d}.jpg"
    assert (lfw / "images" / f.loc[0, "b"]).is_file()
    # different-person line form
    row = f[~f["same"]].iloc[0]
    assert row["a"].split("/")[0] != row["b"].split("/")[0]
    assert all((lfw / "images" / p).is_file() for p in f[["a", "b"]].values[::500].ravel())


def test_single_count_header_and_both_line_forms(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("2\nAl_Gore\t1\t2\nBo_Derek 3 4\nAl_Gore 1 Bo_Derek 2\nCy_Young\t1\tDi_Ro\t12\n")
    f = read_lfw_pairs(p).frame
    assert f["same"].tolist() == [True, True, False, False]
    assert f["a"].tolist()[:2] == ["Al_Gore/Al_Gore_0001.jpg", "Bo_Derek/Bo_Derek_0003.jpg"]
    assert f["b"].tolist()[3] == "Di_Ro/Di_Ro_0012.jpg"
    assert set(f["fold"]) == {0}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("ten 300\nA 1 2\n", "header"),
        ("1 1\nA 1 2\n", "found 1"),
        ("1 1\nA 1 2\nB x C 2\n", ":3:"),
        ("1 1\nA 1 B 2\nC 1 2\n", "same-person"),
        ("1 1\nA 1 2 3 4 5\nC 1 D 2\n", "NAME N1 N2"),
    ],
)
def test_bad_lfw_pairs(tmp_path, text, needle):
    p = tmp_path / "pairs.txt"
    p.write_text(text)
    with pytest.raises(PairsFormatError, match=needle) as err:
        read_lfw_pairs(p)
    assert str(p) in str(err.value)


def test_pairs_csv(tmp_path):
    p = tmp_path / "pairs.csv"
    rows = ["a,b,same"] + [f"x{i}.jpg,y{i}.jpg,{'yes' if i % 2 else 0}" for i in range(40)]
    p.write_text("\n".join(rows) + "\n")
    pairs = read_pairs(p)  # auto: .csv
    assert len(pairs) == 40 and pairs.frame["same"].sum() == 20
    assert sorted(pairs.frame["fold"].unique()) == list(range(10))
    assert pairs.frame.groupby("fold")["same"].sum().tolist() == [2] * 10  # stratified
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,same\nx.jpg,y.jpg,maybe\n")
    with pytest.raises(PairsFormatError, match=r"bad.csv:2: same 'maybe'"):
        read_pairs_csv(bad)
    cols = tmp_path / "cols.csv"
    cols.write_text("left,right\nx,y\n")
    with pytest.raises(PairsFormatError, match="missing column"):
        read_pairs_csv(cols)


def test_needs_both_kinds():
    with pytest.raises(ValueError, match="both"):
        verification_metrics(np.array([0.1, 0.2]), np.array([True, True]))
