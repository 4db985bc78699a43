"""Vote aggregation, per-annotator quality and overall agreement on a hand-checkable example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perface.annotations.aggregate import aggregate, agreement, annotator_quality, filter_annotators


def _judgments() -> pd.DataFrame:
    """Three annotators, four triplets (u3 sees T1 with the candidates swapped; T4 has one answer).

    T1 (q; r, s): u1 r, u2 r, u3 s  -> n_a 2, n_b 1       T2 (q; s, t): u1 s, u2 s -> n_a 2, n_b 0
    T3 (r; s, t): u1 t, u2 s, u3 t  -> n_a 1, n_b 2       T4 (s; q, r): u1 q      -> n_a 1, n_b 0
    Gold: u1 on T2 (answer a, right); u2 on T3 (answer b, wrong).
    """
    rows = [
        ("q", "r", "s", "a", "u1", False, ""), ("q", "r", "s", "a", "u2", False, ""),
        ("q", "s", "r", "a", "u3", False, ""),
        ("q", "s", "t", "a", "u1", True, "a"), ("q", "s", "t", "a", "u2", False, ""),
        ("r", "s", "t", "b", "u1", False, ""), ("r", "s", "t", "a", "u2", True, "b"),
        ("r", "t", "s", "a", "u3", False, ""),
        ("s", "q", "r", "a", "u1", False, ""),
    ]
    return pd.DataFrame(rows, columns=["anchor", "a", "b", "choice", "annotator_id", "is_gold", "gold_choice"])


def test_votes():
    t = aggregate(_judgments())
    assert t[["anchor", "a", "b"]].values.tolist() == [["q", "r", "s"], ["q", "s", "t"], ["r", "s", "t"],
                                                       ["s", "q", "r"]]
    assert t["n_a"].tolist() == [2, 2, 1, 1] and t["n_b"].tolist() == [1, 0, 2, 0]
    assert t["p_a"].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3, 1.0])


def test_leave_one_out_agreement_and_gold():
    q = annotator_quality(_judgments()).set_index("annotator_id")
    # u1: T1 others tie, T2 agrees with u2, T3 others tie, T4 nobody else -> 1 of 1
    # u2: T1 tie, T2 agrees, T3 others (t, t) disagree                    -> 1 of 2
    # u3: T1 others (r, r) disagree, T3 others (t, s) tie                  -> 0 of 1
    assert q["n_judgments"].tolist() == [4, 3, 2]
    assert q["n_compared"].tolist() == [1, 2, 1]
    assert q["loo_agreement"].tolist() == [1.0, 0.5, 0.0]
    assert q["n_gold"].tolist() == [1, 1, 0]
    assert q.loc["u1", "gold_accuracy"] == 1.0 and q.loc["u2", "gold_accuracy"] == 0.0
    assert math.isnan(q.loc["u3", "gold_accuracy"])


def test_filter_annotators():
    j = _judgments()
    kept, dropped = filter_annotators(j, min_gold_accuracy=0.5)
    assert dropped["annotator_id"].tolist() == ["u2"] and "gold_accuracy < 0.5" in dropped["reason"].iat[0]
    assert set(kept["annotator_id"]) == {"u1", "u3"} and len(kept) == 6
    kept, dropped = filter_annotators(j, min_agreement=0.6, min_compared=1)
    assert dropped["annotator_id"].tolist() == ["u2", "u3"]
    kept, dropped = filter_annotators(j, min_agreement=0.6, min_compared=2)   # u3 has too few comparisons
    assert dropped["annotator_id"].tolist() == ["u2"]


def test_overall_agreement_by_hand_and_against_krippendorff():
    krippendorff = pytest.importorskip("krippendorff")
    j = _judgments()
    ag = agreement(j)
    assert (ag["n_judgments"], ag["n_triplets"], ag["n_multi"]) == (9, 4, 3)
    # pairwise: T1 2/6, T2 2/2, T3 2/6 -> mean 5/9
    assert ag["mean_pairwise_agreement"] == pytest.approx(5 / 9)
    # alpha: n = 8 pairable, N_a = 5, N_b = 3, sum n_a n_b / (m - 1) = 1 + 0 + 1 -> 1 - 7 * 2 / 15 = 1/15
    assert ag["krippendorff_alpha"] == pytest.approx(1 / 15)
    nan = np.nan
    reliability = [[0, 0, 1, 0], [0, 0, 0, nan], [1, nan, 1, nan]]   # annotators x triplets, 0 = a, 1 = b
    assert ag["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"))


def test_alpha_matches_krippendorff_on_random_votes():
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(3)
    n_ann, n_tri = 7, 60
    truth = rng.random(n_tri) < 0.5
    data = np.full((n_ann, n_tri), np.nan)
    rows = []
    for u in range(n_ann):
        for t in range(n_tri):
            if rng.random() < 0.6:
                pick_a = truth[t] if rng.random() < 0.8 else not truth[t]
                data[u, t] = 0 if pick_a else 1
                rows.append((f"x{t}", f"y{t}", f"z{t}", "a" if pick_a else "b", f"u{u}"))
    j = pd.DataFrame(rows, columns=["anchor", "a", "b", "choice", "annotator_id"])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert agreement(j)["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
