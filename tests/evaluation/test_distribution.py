"""Distribution metrics: KID against clean-fid, precision/recall/density/coverage against prdc and their
definitions, FD properties, and real face sets: two disjoint halves of LFW (the null) vs LFW vs UTKFace."""

import json

import numpy as np
import pytest

import perface
from perface.cli.main import main
from perface.errors import InsufficientSamplesError
from perface.evaluation import distribution
from perface.evaluation.evaluate import EmbedOptions
from perface.evaluation.features import extract_features


@pytest.fixture(scope="module")
def model():
    return perface.load("base")


@pytest.fixture(scope="module")
def sets(data_root):
    lfw = sorted((data_root / "lfw" / "images").iterdir())
    one_each = [str(sorted(p.glob("*.jpg"))[0]) for p in lfw[::9][:320]]  # one photo per person: disjoint halves
    utk = sorted((data_root / "utkface" / "images").glob("*.jpg"))[:150]
    return {"a": one_each[0::2][:150], "b": one_each[1::2][:150], "utk": [str(p) for p in utk]}


@pytest.fixture(scope="module")
def feats(sets, model):
    whole = EmbedOptions(on_no_face="whole-image")
    return {"a": extract_features(model, sets["a"]), "b": extract_features(model, sets["b"]),
            "utk": extract_features(model, sets["utk"], whole)}


def test_kid_matches_clean_fid(feats):
    from cleanfid.fid import kernel_distance

    r, f = feats["a"].features.astype(np.float64), feats["utk"].features.astype(np.float64)
    for seed, m in ((0, 50), (3, 120)):
        np.random.seed(seed)
        ref = kernel_distance(r, f, num_subsets=20, max_subset_size=m)
        ours = distribution.kid(r, f, subsets=20, subset_size=m, seed=seed)
        assert ours["mean"] == pytest.approx(ref, rel=1e-6, abs=1e-12)
        assert ours["subset_size"] == m and ours["interval95"][0] <= ours["mean"] <= ours["interval95"][1]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(30, 8)) + 0.3
    np.random.seed(5)
    assert distribution.kid(x, y, 10, 25, seed=5)["mean"] == pytest.approx(kernel_distance(x, y, 10, 25), rel=1e-6)


def _prdc_by_definition(real, fake, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=2)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=2)
    r_rad = np.sort(d_rr, axis=1)[:, k]  # k-th neighbour, self excluded (self is at index 0)
    f_rad = np.sort(d_ff, axis=1)[:, k]
    inside = d_rf < r_rad[:, None]  # fake j inside real i's ball
    return {"precision": inside.any(0).mean(), "recall": (d_rf < f_rad[None]).any(1).mean(),
            "density": inside.sum(0).mean() / k, "coverage": (d_rf.min(1) < r_rad).mean()}


def test_prdc_match_the_reference_library_and_definitions(feats):
    from prdc import compute_prdc

    r, f = feats["a"].features[:60], feats["utk"].features[:50]
    ours = distribution.prdc_metrics(r, f)
    ref3, ref5 = compute_prdc(r, f, nearest_k=3), compute_prdc(r, f, nearest_k=5)
    assert ours["precision"] == pytest.approx(ref3["precision"], abs=1e-6)
    assert ours["recall"] == pytest.approx(ref3["recall"], abs=1e-6)
    assert ours["density"] == pytest.approx(ref5["density"], abs=1e-6)
    assert ours["coverage"] == pytest.approx(ref5["coverage"], abs=1e-6)
    d3 = _prdc_by_definition(r.astype(np.float64), f.astype(np.float64), 3)
    d5 = _prdc_by_definition(r.astype(np.float64), f.astype(np.float64), 5)
    assert ours["precision"] == pytest.approx(d3["precision"]) and ours["recall"] == pytest.approx(d3["recall"])
    assert ours["density"] == pytest.approx(d5["density"]) and ours["coverage"] == pytest.approx(d5["coverage"])


def test_fd_properties(feats):
    x = feats["a"].features.astype(np.float64)
    assert distribution.frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    shift = np.zeros(x.shape[1])
    shift[:4] = 0.05
    assert distribution.frechet_distance(x, x + shift) == pytest.approx(np.sum(shift ** 2), abs=1e-6)


def test_lfw_halves_near_null_and_utkface_far(feats):
    a, b, u = feats["a"].features, feats["b"].features, feats["utk"].features
    assert len(a) >= 140 and len(b) >= 140 and len(u) == 150
    null = distribution.compare(a, b, kid_subsets=100, seed=0)
    far = distribution.compare(a, u, kid_subsets=100, seed=0)
    lo, hi = null["kid"]["interval95"]
    assert lo < 0 < hi  # same distribution: KID's subset interval contains 0
    assert far["kid"]["interval95"][0] > 0 and far["kid"]["mean"] > 20 * max(null["kid"]["mean"], 1e-6)
    assert far["fd"] > 3 * null["fd"]
    assert null["coverage"] > far["coverage"] and null["recall"] > far["recall"]
    assert null["notes"] == []  # 140+ samples for 128 dimensions


def test_l2_normalisation(feats):
    a, u = feats["a"].features.astype(np.float64), feats["utk"].features.astype(np.float64)
    # base embeddings are already unit vectors: normalising changes nothing
    assert distribution.frechet_distance(distribution._l2(a), distribution._l2(u)) == pytest.approx(
        distribution.frechet_distance(a, u), rel=1e-6)
    scale = np.linspace(0.5, 3.0, len(u))[:, None]  # per-image feature norms differ
    raw = distribution.frechet_distance(a, u * scale)
    l2 = distribution.frechet_distance(distribution._l2(a), distribution._l2(u * scale))
    assert raw > 10 * l2  # norms inflate FD; on the unit sphere they cannot
    assert l2 == pytest.approx(distribution.frechet_distance(a, u), rel=1e-6) and l2 <= 4


def test_too_few_samples_is_a_clear_error(feats):
    a, u = feats["a"].features, feats["utk"].features
    with pytest.raises(InsufficientSamplesError, match="larger than the sets"):
        distribution.kid(a[:20], u[:30], subset_size=25)
    with pytest.raises(InsufficientSamplesError, match="at least 7 usable images per set"):
        distribution.prdc_metrics(a[:6], u[:30])
    with pytest.raises(InsufficientSamplesError):
        distribution.kid(a[:3], u[:3])


def test_cli_distribution_json_and_report(sets, tmp_path, capsys):
    for name, files in (("real", sets["a"][:40]), ("fake", sets["utk"][:40])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f.split("/")[-1]).symlink_to(f)
    args = ["eval", "distribution", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
            "--on-no-face", "whole-image", "--kid-subsets", "20"]
    assert main(args + ["--l2-normalize", "--json", "--report", str(tmp_path / "rep")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["features"]) == ["base", "base+l2"]
    m = doc["features"]["base"]
    assert set(m) >= {"fd", "kid", "precision", "recall", "density", "coverage", "n_real", "n_fake"}
    assert set(m["kid"]) >= {"mean", "std"} and m["n_real"] == 40 and m["n_fake"] == 40
    assert "| base+l2 |" in (tmp_path / "rep" / "report.md").read_text()
    assert main(args + ["--kid-subset-size", "500"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KID subset size 500 is larger than the sets" in err
    for bad, message in ((["--kid-subsets", "0"], "--kid-subsets 0: use at least 1 subset"),
                         (["--real", str(tmp_path / "nope")], "--real " + str(tmp_path / "nope") + ": not a folder")):
        assert main(args + bad) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
