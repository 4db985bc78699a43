"""2AFC agreement math: hand-checked credit, bootstrap CIs, strata, paired differences."""

import numpy as np
import pytest

from perface.evaluation.agreement import agreement, bootstrap_ci, paired_difference, triplet_credit


def test_credit_by_hand():
    # model prefers a, b, a, tie, a with p_a = 0.8, 0.8, 0.3, 0.9, 1.0
    sim_a = np.array([0.9, 0.1, 0.6, 0.5, 0.7])
    sim_b = np.array([0.2, 0.4, 0.5, 0.5, 0.6])
    p_a = np.array([0.8, 0.8, 0.3, 0.9, 1.0])
    credit = triplet_credit(sim_a, sim_b, p_a)
    np.testing.assert_allclose(credit, [0.8, 0.2, 0.3, 0.5, 1.0])
    res = agreement(sim_a, sim_b, p_a, n_boot=500)
    assert res["agreement"] == pytest.approx(2.8 / 5)
    assert res["n"] == 5
    assert res["ceiling"] == pytest.approx((0.8 + 0.8 + 0.7 + 0.9 + 1.0) / 5)
    assert res["by_stratum"] == {}


def test_hard_labels_are_plain_accuracy():
    rng = np.random.default_rng(1)
    sa, sb = rng.normal(size=200), rng.normal(size=200)
    labels = rng.integers(0, 2, size=200).astype(float)
    correct = np.where(sa > sb, labels == 1, labels == 0)
    assert agreement(sa, sb, labels, n_boot=200)["agreement"] == pytest.approx(correct.mean())


def test_by_stratum_splits_credit():
    sa = np.array([1.0, 1.0, 0.0, 0.0])
    sb = np.array([0.0, 0.0, 1.0, 1.0])
    p = np.ones(4)
    res = agreement(sa, sb, p, strata=np.array(["gender", "gender", "age", "age"]), n_boot=200)
    assert res["by_stratum"]["gender"]["agreement"] == 1.0
    assert res["by_stratum"]["age"]["agreement"] == 0.0
    assert res["by_stratum"]["age"]["n"] == 2 and res["agreement"] == 0.5


def test_bootstrap_ci_contains_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 10_000):
        values = (rng.random(n) < 0.7).astype(float)
        lo, hi = bootstrap_ci(values, n_boot=1000, seed=0)
        assert lo <= values.mean() <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 5  # ~1/sqrt(100) narrower
    # the 95% CI of a Bernoulli(0.7) mean with n=100 is about +-0.09
    assert 0.12 < widths[0] < 0.24
    # seeded: the same numbers every time
    values = (rng.random(50) < 0.5).astype(float)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)


def test_paired_difference():
    rng = np.random.default_rng(2)
    base = (rng.random(2000) < 0.6).astype(float)
    same = paired_difference(base, base, n_boot=300)
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]
    better = np.maximum(base, (rng.random(2000) < 0.3).astype(float))  # fixes some of base's errors
    diff = paired_difference(better, base, n_boot=500)
    assert diff["difference"] == pytest.approx(better.mean() - base.mean())
    assert 0 < diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1]
    # the paired CI is narrower than the difference of two unpaired CIs would suggest
    lo1, hi1 = bootstrap_ci(better, n_boot=500)
    assert diff["ci95"][1] - diff["ci95"][0] < hi1 - lo1
    strat = paired_difference(better, base, n_boot=200, strata=np.array(["x", "y"] * 1000))
    assert set(strat["by_stratum"]) == {"x", "y"} and strat["by_stratum"]["x"]["n"] == 1000


@pytest.mark.parametrize("p_a", [np.array([1.5]), np.array([np.nan]), np.array([-0.1])])
def test_bad_p_a(p_a):
    with pytest.raises(ValueError, match="p_a"):
        triplet_credit(np.array([1.0]), np.array([0.0]), p_a)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        triplet_credit(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError):
        paired_difference(np.zeros(3), np.zeros(4))
