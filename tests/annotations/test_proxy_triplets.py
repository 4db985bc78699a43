"""Proxy triplets from the real label files (UTKFace, FairFace, LFW): semantics, paths, determinism, committed set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from perface.annotations.labels import AGE_BANDS, age_band, labels_frame
from perface.annotations.proxy import AttributeSource, attribute_triplets, identity_triplets
from perface.annotations.schema import read_triplets
from perface.annotations.split import check_disjoint
from perface.cli.main import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "data" / "annotations" / "proxy_attributes_utkface_fairface.csv"


@pytest.fixture(scope="module")
def sources(data_root):
    utk = labels_frame(data_root / "utkface" / "labels.csv", data_root)
    ff = labels_frame(data_root / "fairface" / "labels.csv", data_root).rename(columns={"age_group": "age"})
    return [AttributeSource("utkface", utk, ("gender", "race", "age")), AttributeSource("fairface", ff, ("gender", "age"))]


def test_age_bands():
    assert [age_band(v) for v in (0, 2, 3, 9, 10, 19, 20, 29, 69, 70, 116)] == \
        ["0-2", "0-2", "3-9", "3-9", "10-19", "10-19", "20-29", "20-29", "60-69", "70+", "70+"]
    assert age_band("30-39") == "30-39" and age_band("old") is None and age_band(-1) is None
    assert AGE_BANDS[0] == "0-2" and AGE_BANDS[-1] == "70+"


def _check_attribute_semantics(tri: pd.DataFrame, sources, min_gap: int):
    info = {}
    for src in sources:
        for row in src.labels.itertuples(index=False):
            info[row.path] = (src.name, {a: (AGE_BANDS.index(age_band(getattr(row, a))) if a == "age"
                                            else getattr(row, a)) for a in src.attributes})
    for t in tri.itertuples(index=False):
        (ds_q, q), (ds_a, a), (ds_b, b) = info[t.anchor], info[t.a], info[t.b]
        assert ds_q == ds_a == ds_b, "a triplet mixes datasets"
        assert a == q, f"{t.a} does not share the anchor's attributes"
        differing = [k for k in ("gender", "race", "age") if k in q and b[k] != q[k]]
        assert "+".join(differing) == t.stratum
        if "age" in differing:
            assert abs(b["age"] - q["age"]) >= min_gap


def test_attribute_triplets_from_utkface_and_fairface(sources, data_root):
    tri, report = attribute_triplets(sources, 1200, seed=3, min_age_gap=2, root=data_root)
    assert len(tri) == 1200 == report.made
    assert (tri["source"] == "proxy-attribute").all() and (tri["p_a"] == 1.0).all()
    assert not tri.duplicated(["anchor", "a", "b"]).any()
    assert set(tri["stratum"]) == {"gender", "race", "age", "gender+race", "gender+age", "race+age",
                                   "gender+race+age"}
    assert report.per_source["utkface"] > 5 * report.per_source["fairface"] > 0
    _check_attribute_semantics(tri, sources, 2)
    for col in ("anchor", "a", "b"):
        assert all((data_root / p).is_file() for p in tri[col])
    again, _ = attribute_triplets(sources, 1200, seed=3, min_age_gap=2, root=data_root)
    pd.testing.assert_frame_equal(tri, again)
    other, _ = attribute_triplets(sources, 1200, seed=4, min_age_gap=2, root=data_root)
    assert not tri.equals(other)


def test_attribute_triplets_with_split_are_disjoint(sources, data_root):
    tri, report = attribute_triplets(sources, 1000, seed=0, min_age_gap=2, root=data_root, fractions=(0.8, 0.1, 0.1))
    assert report.per_split == {"train": 800, "val": 100, "test": 100}
    assert check_disjoint(tri) == []
    _check_attribute_semantics(tri, sources, 2)


def test_identity_triplets_from_lfw(data_root):
    labels = labels_frame(data_root / "lfw" / "gender.csv", data_root)
    ident = dict(zip(labels["path"], labels["identity"]))
    gender = dict(zip(labels["path"], labels["gender"]))
    tri, report = identity_triplets(labels, 800, seed=0, negative_same=("gender",), root=data_root,
                                    fractions=(0.8, 0.1, 0.1))
    assert len(tri) == 800 and (tri["source"] == "proxy-identity").all()
    assert report.skipped == {"identity labels: no gender label": 3}
    for t in tri.itertuples(index=False):
        assert ident[t.anchor] == ident[t.a] != ident[t.b] and t.anchor != t.a
        assert gender[t.anchor] == gender[t.b]
        assert all((data_root / p).is_file() for p in (t.anchor, t.a, t.b))
    assert check_disjoint(tri, ident) == []
    # without negative_same the stratum records when the negative also differs in gender
    tri2, _ = identity_triplets(labels, 400, seed=0, root=data_root)
    assert set(tri2["stratum"]) == {"identity", "identity+gender"}
    for t in tri2.itertuples(index=False):
        assert (t.stratum == "identity+gender") == (gender[t.anchor] != gender[t.b])


def test_lfw_gender_triplets_avoid_the_anchor_person(data_root):
    labels = labels_frame(data_root / "lfw" / "gender.csv", data_root)
    ident = dict(zip(labels["path"], labels["identity"]))
    src = AttributeSource("lfw", labels, ("gender",), identity_column="identity")
    tri, _ = attribute_triplets([src], 500, seed=0, root=data_root)
    assert (tri["stratum"] == "gender").all()
    assert all(ident[t.anchor] != ident[t.a] and ident[t.anchor] != ident[t.b] for t in tri.itertuples())


def test_committed_proxy_set_is_reproducible_and_sound(data_root, tmp_path, monkeypatch):
    assert COMMITTED.is_file(), "run the command in data/annotations/README.md"
    assert COMMITTED.stat().st_size < 1_000_000
    tri = read_triplets(COMMITTED)
    assert len(tri) == 5000 and tri["split"].value_counts().to_dict() == {"train": 4000, "val": 500, "test": 500}
    assert check_disjoint(tri) == []
    for col in ("anchor", "a", "b"):
        assert all((data_root / p).is_file() for p in tri[col])
    monkeypatch.setenv("PERFACE_DATA", str(data_root))
    out = tmp_path / "again.csv"
    code = main(["triplets", "from-labels", "--config", str(REPO / "configs/triplets/utkface_fairface_attributes.yaml"),
                 "--out", str(out)])
    assert code == 0
    assert out.read_bytes() == COMMITTED.read_bytes()


def test_unseen_attributes_never_count_as_differences(sources, data_root):
    """``shown_from_age`` / ``vague``: infants' gender and UTKFace's race 'other' never make a stratum; the
    image split stays the one of the labels as given."""
    from perface.annotations.labels import age_band_lower

    kw = dict(seed=1, min_age_gap=2, root=data_root, fractions=(0.8, 0.1, 0.1))
    plain, _ = attribute_triplets(sources, 3000, **kw)
    tri, report = attribute_triplets(sources, 3000, shown_from_age={"gender": 10}, vague={"race": ["Other"]}, **kw)
    info = {}
    for src in sources:
        for row in src.labels.itertuples(index=False):
            info[row.path] = {a: getattr(row, a) for a in src.attributes}

    def young(p):
        return age_band_lower(age_band(info[p]["age"])) < 10

    def shows(p, attr):
        return not ((attr == "gender" and young(p)) or (attr == "race" and info[p].get("race") == "other"))

    def claimed(frame):
        """Triplets whose stratum names a difference the anchor or b cannot show."""
        return [t for t in frame.itertuples(index=False) for attr in t.stratum.split("+")
                if attr != "age" and not (shows(t.anchor, attr) and shows(t.b, attr))]

    assert len(claimed(plain)) > 100  # the labels as given do make such triplets
    assert claimed(tri) == []
    for t in tri.itertuples(index=False):
        q, a, b = info[t.anchor], info[t.a], info[t.b]
        for attr in q:
            seen = shows(t.anchor, attr)
            if attr == "age":
                assert age_band(a["age"]) == age_band(q["age"])
            else:  # a shares what the anchor shows; an unseen value only with another unseen one
                assert (a[attr] == q[attr]) if seen else not shows(t.a, attr)
            if attr in t.stratum.split("+"):
                assert (abs(AGE_BANDS.index(age_band(b["age"])) - AGE_BANDS.index(age_band(q["age"]))) >= 2
                        if attr == "age" else b[attr] != q[attr])
            elif seen and attr != "age":
                assert b[attr] == q[attr]
    kids = {s.name: int(sum(age_band_lower(age_band(v)) < 10 for v in s.labels["age"])) for s in sources}
    assert report.unseen == {"utkface: gender": kids["utkface"], "utkface: race": 562,
                             "fairface: gender": kids["fairface"]}
    owner = {p: s for f in (plain, tri) for c in ("anchor", "a", "b") for p, s in zip(f[c], f["split"])}
    assert all(owner[p] == s for c in ("anchor", "a", "b") for p, s in zip(plain[c], plain["split"]))
    assert check_disjoint(tri) == []


def test_unseen_attribute_settings_are_checked(sources, data_root):
    from perface.errors import SettingsError

    with pytest.raises(SettingsError, match="race value 'others' occurs in no label .*other, white"):
        attribute_triplets(sources, 10, root=data_root, vague={"race": ["others"]})
    with pytest.raises(SettingsError, match="every face shows an age"):
        attribute_triplets(sources, 10, root=data_root, shown_from_age={"age": 10})
    no_age = [AttributeSource("utkface", sources[0].labels, ("gender", "race"))]
    with pytest.raises(SettingsError, match="needs the source's age labels"):
        attribute_triplets(no_age, 10, root=data_root, shown_from_age={"gender": 10})


def test_committed_visible_set_is_reproducible(data_root, tmp_path, monkeypatch):
    committed = REPO / "data" / "annotations" / "proxy_attributes_visible_30k.parquet"
    first = read_triplets(REPO / "data" / "annotations" / "proxy_attributes_utkface_fairface_30k.parquet")
    monkeypatch.setenv("PERFACE_DATA", str(data_root))
    out = tmp_path / "again.parquet"
    assert main(["triplets", "from-labels", "--config",
                 str(REPO / "configs/triplets/utkface_fairface_visible_30k.yaml"), "--out", str(out)]) == 0
    assert out.read_bytes() == committed.read_bytes()
    tri = read_triplets(committed)
    # the same image split as the first 30k set: a model trained on either is tested on both
    split = {p: s for c in ("anchor", "a", "b") for p, s in zip(first[c], first["split"])}
    assert all(split.get(p, s) == s for c in ("anchor", "a", "b") for p, s in zip(tri[c], tri["split"]))
