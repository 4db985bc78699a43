"""Proxy-triplet recipes (perface.annotations.proxy_config): the YAML schema and its file:line errors, flags over
a config, and the builder giving exactly what ``perface triplets from-labels`` writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from perface.annotations.proxy_config import ProxyConfig, build_proxy_triplets, write_proxy_triplets
from perface.annotations.schema import read_triplets
from perface.cli.main import main
from perface.errors import AnnotationError, SettingsError

REPO = Path(__file__).resolve().parents[2]

RECIPE = {
    "kind": "attribute", "n": 200, "seed": 5, "min_age_gap": 2, "split": [0.8, 0.1, 0.1],
    "sources": [
        {"name": "utkface", "labels": "utkface/labels.csv", "attributes": ["gender", "race", "age"]},
        {"name": "fairface", "labels": "fairface/labels.csv", "attributes": ["gender", "age"],
         "columns": {"age": "age_group"}},
    ],
}


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, data_root):
    monkeypatch.setenv("PERFACE_DATA", str(data_root))


def test_builder_from_a_dict_gives_the_cli_triplets(tmp_path, capsys):
    config = ProxyConfig.from_dict(RECIPE)
    tri, report = build_proxy_triplets(config)
    assert len(tri) == 200 and report.per_split == {"train": 160, "val": 20, "test": 20}
    assert set(report.per_source) == {"utkface", "fairface"}

    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "cli.csv"
    assert main(["triplets", "from-labels", "--config", str(path), "--out", str(out)]) == 0
    assert "made 200 of 200 proxy-attribute triplets" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_triplets(out), read_triplets(write_proxy_triplets(
        config.override(out=str(tmp_path / "lib.csv"))).out))
    written = read_triplets(out)
    cols = ["anchor", "a", "b", "stratum", "split"]
    assert written[cols].values.tolist() == tri[cols].values.tolist()
    # to_dict round-trips
    assert ProxyConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_flags_override_the_recipe():
    base = ProxyConfig.from_yaml(REPO / "configs/triplets/utkface_fairface_attributes.yaml")
    assert base.n == 5000 and base.origin["n"].endswith("utkface_fairface_attributes.yaml:7")
    flags = {"config": str(REPO / "configs/triplets/utkface_fairface_attributes.yaml"), "n": 50,
             "attributes": "gender", "seed": None, "kind": None}
    config = ProxyConfig.from_args(flags)
    assert config.n == 50 and config.origin["n"] == "--n" and config.seed == 0
    assert all(s.attributes == () for s in config.sources) and config.attributes == ("gender",)
    tri, _ = build_proxy_triplets(config)
    assert len(tri) == 50 and (tri["stratum"] == "gender").all()
    only = ProxyConfig.from_args({"kind": "identity", "labels": ["lfw/gender.csv"], "n": 10, "out": "x.csv"})
    assert [s.labels for s in only.sources] == ["lfw/gender.csv"] and only.out == "x.csv"
    with pytest.raises(SettingsError, match=r"^--n must be at least 1 \(got 0\)$"):
        ProxyConfig.from_args({"kind": "attribute", "n": 0})
    with pytest.raises(SettingsError, match="--split: fractions"):
        ProxyConfig.from_args({"split": "1,2"})


@pytest.mark.parametrize("text, error, where", [
    ("kind: attribute\nn: 0\n", SettingsError, ":2: n must be at least 1 (got 0)"),
    ("kind: faces\n", SettingsError, ":1: kind must be identity or attribute"),
    ("kind: attribute\nseed: many\n", SettingsError, ":2: seed must be a whole number"),
    ("kind: attribute\nsplit: [1, 2]\n", SettingsError, ":2: split: fractions"),
    ("kind: attribute\nnn: 5\n", AnnotationError, ":2: unknown setting(s) nn"),
    ("kind: attribute\nsources:\n  - labels: utkface/labels.csv\n  - name: x\n", SettingsError,
     ":4: source 2 needs a 'labels:' file"),
    ("kind: attribute\nsources:\n  - labels: utkface/labels.csv\n    attributes: [hair]\n", SettingsError,
     ":4: sources[1].attributes: 'hair' is not an attribute"),
    ("kind: attribute\nsources:\n  - labels: utkface/labels.csv\n    colums: {}\n", AnnotationError,
     ":3: unknown setting(s) colums in source 1"),
    ("kind: attribute\nsources: utkface/labels.csv\n", AnnotationError, ":2: 'sources:' must be a list"),
    ("- kind\n", AnnotationError, ":1: expected a mapping"),
    ("kind: attribute\nsources: [\n", AnnotationError, ": not valid YAML"),
])
def test_bad_recipes_name_file_and_line(tmp_path, text, error, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error) as info:
        ProxyConfig.from_yaml(path)
    assert str(info.value).startswith(str(path)) and where in str(info.value), str(info.value)


def test_missing_settings_and_columns(tmp_path):
    with pytest.raises(SettingsError, match="give --kind"):
        build_proxy_triplets(ProxyConfig.from_dict({"labels": "lfw/gender.csv"}))
    with pytest.raises(SettingsError, match="give --labels"):
        build_proxy_triplets(ProxyConfig(kind="attribute"))
    with pytest.raises(SettingsError, match="give --out"):
        write_proxy_triplets(ProxyConfig(kind="attribute", sources=ProxyConfig.from_dict(RECIPE).sources))
    with pytest.raises(SettingsError, match="has no column 'age_years' for age"):
        build_proxy_triplets(ProxyConfig.from_dict({"kind": "attribute", "labels": "fairface/labels.csv",
                                                    "columns": {"age": "age_years"}}))
    with pytest.raises(SettingsError, match="exactly one label file"):
        build_proxy_triplets(ProxyConfig.from_dict({"kind": "identity", "sources": RECIPE["sources"]}))


def test_unseen_attribute_settings_in_a_recipe(tmp_path):
    config = ProxyConfig.from_yaml(REPO / "configs/triplets/utkface_fairface_visible_30k.yaml")
    assert config.shown_from_age == {"gender": 10} and config.vague == {"race": ("other",)}
    assert ProxyConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    recipe = {**RECIPE, "shown_from_age": {"gender": 10}, "vague": {"race": ["other"]}}
    tri, report = build_proxy_triplets(ProxyConfig.from_dict(recipe))
    assert len(tri) == 200 and set(report.unseen) == {"utkface: gender", "utkface: race", "fairface: gender"}
    for text, where in [("shown_from_age: {gender: young}\n", ":1: shown_from_age.gender"),
                        ("shown_from_age: [gender]\n", ":1: shown_from_age must map attributes to ages"),
                        ("vague: {hair: [grey]}\n", ":1: vague: 'hair' is not an attribute")]:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(SettingsError) as info:
            ProxyConfig.from_yaml(path)
        assert where in str(info.value), str(info.value)
