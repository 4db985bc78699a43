"""Proxy-triplet recipes (``perface triplets from-labels``): the YAML config schema, its validation, and the
builder that turns a recipe into triplets.

A recipe (``configs/triplets/*.yaml``; command-line flags override it)::

    description: UTKFace + FairFace attribute-consistency triplets   # free text
    kind: attribute            # or identity
    n: 5000                    # triplets (default 1000)
    seed: 0                    # default 0
    min_age_gap: 2             # attribute: age bands apart for ages to differ (default 1)
    shown_from_age: {gender: 10}   # attribute: younger faces do not show it (never count as differing in it)
    vague: {race: [other]}    # attribute: label values that name no visible group (never count as differing)
    split: [0.8, 0.1, 0.1]     # images (people) given to train/val/test first; adds a split column
    root: ../shared/data       # dataset root (default: $PERFACE_DATA, see perface.io.files.data_root)
    out: data/annotations/x.csv
    attributes: [gender, age]  # attribute: default for sources without their own (default: all they have)
    identity_column: identity  # identity: the person column; attribute: keep a and b other people
    negative_same: [gender]    # identity: attributes b's person shares with the anchor
    columns: {age: age_group}  # read a label column as an attribute, for every source
    sources:                   # attribute: triplets are drawn within each source, never across
      - name: utkface          # default: the label file's folder name
        labels: utkface/labels.csv   # relative to the current folder or the dataset root
        attributes: [gender, race, age]
        identity_column: ...   # overrides the top-level one for this source
        n: 4000                # this source's own number (else n is split by usable images)
        columns: {age: age}
    labels: lfw/gender.csv     # instead of sources: one label file

Problems are reported with the file and line: a file that is not YAML, not a mapping, or has settings this
schema does not know is an :class:`~perface.errors.AnnotationError` (exit 1); a value of the wrong type or out
of range (``n: 0``, ``kind: faces``, ``split: [1, 2]``), and a missing ``kind`` / ``labels`` / ``out``, is a
:class:`~perface.errors.SettingsError` (exit 2). See :mod:`perface.annotations.proxy` for what the triplets mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from perface.annotations.labels import labels_frame
from perface.annotations.paths import find_label_file
from perface.annotations.proxy import (ATTRIBUTES, AttributeSource, ProxyReport, attribute_triplets,
                                       identity_triplets, standard_attributes)
from perface.annotations.schema import write_triplets
from perface.annotations.split import check_disjoint, parse_fractions
from perface.errors import AnnotationError, SettingsError
from perface.io.files import data_root

__all__ = ["KINDS", "SETTINGS", "SOURCE_SETTINGS", "ProxyConfig", "ProxyRun", "ProxySource", "build_proxy_triplets",
           "write_proxy_triplets"]

#: Kinds of proxy triplets.
KINDS = ("identity", "attribute")
#: Top-level settings of a recipe.
SETTINGS = ("description", "kind", "n", "seed", "min_age_gap", "split", "root", "out", "attributes",
            "identity_column", "negative_same", "columns", "sources", "labels", "shown_from_age", "vague")
#: Settings of one entry of ``sources``.
SOURCE_SETTINGS = ("name", "labels", "attributes", "identity_column", "n", "columns")
#: Command-line flag of each setting a flag can override.
FLAGS = {"kind": "--kind", "n": "--n", "seed": "--seed", "min_age_gap": "--min-age-gap", "split": "--split",
         "root": "--root", "out": "--out", "attributes": "--attributes", "identity_column": "--identity-column",
         "negative_same": "--negative-same", "labels": "--labels"}


# --- checking values ----------------------------------------------------------------------------------------
def _integer(value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SettingsError(f"{where} must be a whole number (got {value!r})")
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{where} must be a whole number (got {value!r})") from None
    if minimum is not None and number < minimum:
        raise SettingsError(f"{where} must be at least {minimum} (got {number})")
    return number


def _text(value: Any, where: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value).strip() == "":
        raise SettingsError(f"{where} must be a non-empty string (got {value!r})")
    return str(value).strip()


def _names(value: Any, where: str) -> tuple[str, ...]:
    """``[gender, age]`` or ``"gender,age"`` -> ``("gender", "age")``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise SettingsError(f"{where} must be a list of names or 'a,b' (got {value!r})")


def _attributes(value: Any, where: str) -> tuple[str, ...]:
    names = _names(value, where)
    unknown = [a for a in names if a not in ATTRIBUTES]
    if unknown:
        raise SettingsError(f"{where}: {unknown[0]!r} is not an attribute of proxy triplets (choose among "
                            f"{', '.join(ATTRIBUTES)}; read other columns as them with 'columns:')")
    return names


def _columns(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingsError(f"{where} must map names to label columns, e.g. {{age: age_group}} (got {value!r})")
    return dict(value)


def _per_attribute(value: Any, where: str, example: str, check) -> dict:
    """``{attribute: value}`` with attribute names checked and each value passed through ``check(value, where)``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where} must map attributes to {example} (got {value!r})")
    out = {}
    for name, item in value.items():
        _attributes([name], where)
        out[str(name)] = check(item, f"{where}.{name}")
    return out


def _shown_from_age(value: Any, where: str) -> dict[str, int]:
    return _per_attribute(value, where, "ages in years, e.g. {gender: 10}", lambda v, w: _integer(v, w, 0))


def _vague(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    return _per_attribute(value, where, "label values, e.g. {race: [other]}", _names)


def _kind(value: Any, where: str) -> str:
    if value not in KINDS:
        raise SettingsError(f"{where} must be identity or attribute (got {value!r})")
    return value


def _split(value: Any, where: str) -> tuple[float, float, float]:
    try:
        return parse_fractions(value if isinstance(value, str) else list(value))
    except (SettingsError, TypeError) as exc:
        raise SettingsError(f"{where}: {exc}") from None


_CHECKS = {"kind": _kind, "n": lambda v, w: _integer(v, w, 1), "seed": lambda v, w: _integer(v, w, 0),
           "min_age_gap": lambda v, w: _integer(v, w, 1), "split": _split, "root": _text, "out": _text,
           "attributes": _attributes, "identity_column": _text, "negative_same": _names, "columns": _columns,
           "shown_from_age": _shown_from_age, "vague": _vague, "description": lambda v, w: "" if v is None else str(v)}


# --- the recipe ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxySource:
    """One label file of a recipe (see the module docstring); ``where`` locates it for messages."""

    labels: str
    name: str | None = None
    attributes: tuple[str, ...] = ()
    identity_column: str | None = None
    n: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class ProxyConfig:
    """A proxy-triplet recipe (see the module docstring for each setting).

    Attributes:
        origin: Where each setting was given: ``"file.yaml:4"`` or the flag (``"--n"``), for messages.
        path: The YAML file it was read from, if any.
    """

    kind: str | None = None
    sources: tuple[ProxySource, ...] = ()
    n: int = 1000
    seed: int = 0
    min_age_gap: int = 1
    split: tuple[float, float, float] | None = None
    root: str | None = None
    out: str | None = None
    attributes: tuple[str, ...] = ()
    identity_column: str | None = None
    negative_same: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)
    shown_from_age: dict[str, int] = field(default_factory=dict)
    vague: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    origin: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    # --- reading ----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, settings: Mapping[str, Any], source: str = "<config>",
                  lines: Mapping[str, int] | None = None) -> "ProxyConfig":
        """A recipe from a mapping of settings (what the YAML file holds).

        Args:
            settings: The settings.
            source: What they came from, for messages (a file name).
            lines: Line of each setting (``"n"``, ``"sources.0"``, ``"sources.0.labels"``), for messages.

        Raises:
            AnnotationError: settings this schema does not know; ``sources`` not a list of mappings.
            SettingsError: a value of the wrong type or out of range.
        """
        lines = dict(lines or {})

        def where(key: str) -> str:
            return f"{source}:{lines[key]}" if key in lines else source

        if not isinstance(settings, Mapping):
            raise AnnotationError(f"{source}:1: expected a mapping of settings (kind, n, sources, ...)")
        unknown = sorted(str(k) for k in settings if k not in SETTINGS)
        if unknown:
            raise AnnotationError(f"{where(unknown[0])}: unknown setting(s) {', '.join(unknown)} (known: "
                                  f"{', '.join(sorted(SETTINGS))})")
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in settings.items():
            if key in ("sources", "labels") or value is None:
                continue
            values[key] = _CHECKS[key](value, f"{where(key)}: {key}")
            origin[key] = where(key)
        if settings.get("sources") is not None and settings.get("labels") is not None:
            raise AnnotationError(f"{where('labels')}: give either 'sources:' or 'labels:', not both")
        if settings.get("sources") is not None:
            raw = settings["sources"]
            if not isinstance(raw, list) or not raw:
                raise AnnotationError(f"{where('sources')}: 'sources:' must be a list of label files, each a mapping "
                                      "with 'labels:'")
            values["sources"] = tuple(_source(item, i, source, lines) for i, item in enumerate(raw))
            origin["sources"] = where("sources")
        elif settings.get("labels") is not None:
            values["sources"] = (ProxySource(_text(settings["labels"], f"{where('labels')}: labels"),
                                             where=where("labels")),)
            origin["sources"] = where("labels")
        return cls(**values, origin=origin, path=None)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ProxyConfig":
        """Read a recipe file (see :meth:`from_dict`; messages name the file and line).

        Raises:
            FileNotFoundError: no such file.
            AnnotationError: not valid YAML, not a mapping, or unknown settings.
            SettingsError: a bad value.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(2, "No such file", str(path)) from None
        except UnicodeDecodeError as exc:
            raise AnnotationError(f"{path}: not UTF-8 text ({exc.reason}); save the config as UTF-8") from None
        try:
            settings = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise AnnotationError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        config = cls.from_dict({} if settings is None else settings, str(path), _lines(node))
        return replace(config, path=str(path))

    @classmethod
    def from_args(cls, flags: Mapping[str, Any]) -> "ProxyConfig":
        """A recipe from command-line values: ``config`` (a YAML file, read with :meth:`from_yaml`) overridden by
        the flags that are set (not None): ``kind, labels`` (a list of files: replaces the sources), ``attributes``
        (replaces every source's own), ``n`` (replaces every source's own), ``seed, min_age_gap, split, root, out,
        identity_column, negative_same``. Other keys are ignored.

        Raises:
            SettingsError: a bad flag value (the message names the flag), see also :meth:`from_yaml`.
        """
        config = cls.from_yaml(flags["config"]) if flags.get("config") else cls()
        return config.override(**{k: flags.get(k) for k in FLAGS})

    def override(self, **flags: Any) -> "ProxyConfig":
        """A copy with the given settings (None = keep) replaced, checked and recorded as given by their flag."""
        changes: dict[str, Any] = {}
        origin = dict(self.origin)
        for key, value in flags.items():
            if value is None:
                continue
            flag = FLAGS[key]
            if key == "labels":
                files = [value] if isinstance(value, (str, os.PathLike)) else list(value)
                changes["sources"] = tuple(ProxySource(_text(os.fspath(f), flag), where=flag) for f in files)
                origin["sources"] = flag
                continue
            changes[key] = _CHECKS[key](value, flag)
            origin[key] = flag
        sources = changes.get("sources", self.sources)
        if flags.get("attributes") is not None:  # the flag applies to every source
            sources = tuple(replace(s, attributes=()) for s in sources)
        if flags.get("n") is not None:  # one number for all sources, split by their usable images
            sources = tuple(replace(s, n=None) for s in sources)
        changes["sources"] = sources
        return replace(self, **changes, origin=origin)

    def to_dict(self) -> dict:
        """The settings as a YAML-ready mapping (what :meth:`from_dict` reads back)."""
        out: dict[str, Any] = {"kind": self.kind, "n": self.n, "seed": self.seed, "min_age_gap": self.min_age_gap}
        for key in ("description", "root", "out", "identity_column"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.split is not None:
            out["split"] = list(self.split)
        for key in ("attributes", "negative_same"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.columns:
            out["columns"] = dict(self.columns)
        if self.shown_from_age:
            out["shown_from_age"] = dict(self.shown_from_age)
        if self.vague:
            out["vague"] = {k: list(v) for k, v in self.vague.items()}
        out["sources"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in
                           (("labels", s.labels), ("name", s.name), ("attributes", s.attributes),
                            ("identity_column", s.identity_column), ("n", s.n), ("columns", s.columns)) if v}
                          for s in self.sources]
        return out

    def where(self, key: str) -> str:
        """Where a setting was given (``"file.yaml:4"`` / ``"--n"``), or the config file / ``"the settings"``."""
        return self.origin.get(key) or self.path or "the settings"


def _source(item: Any, i: int, source: str, lines: Mapping[str, int]) -> ProxySource:
    key = f"sources.{i}"
    here = f"{source}:{lines[key]}" if key in lines else source

    def where(name: str) -> str:
        k = f"{key}.{name}"
        return f"{source}:{lines[k]}: sources[{i + 1}].{name}" if k in lines else f"{here}: sources[{i + 1}].{name}"

    if not isinstance(item, Mapping):
        raise AnnotationError(f"{here}: source {i + 1} must be a mapping with 'labels:' (got {item!r})")
    unknown = sorted(str(k) for k in item if k not in SOURCE_SETTINGS)
    if unknown:
        raise AnnotationError(f"{here}: unknown setting(s) {', '.join(unknown)} in source {i + 1} (known: "
                              f"{', '.join(SOURCE_SETTINGS)})")
    if item.get("labels") is None:
        raise SettingsError(f"{here}: source {i + 1} needs a 'labels:' file")
    return ProxySource(
        labels=_text(item["labels"], where("labels")),
        name=_text(item["name"], where("name")) if item.get("name") is not None else None,
        attributes=_attributes(item.get("attributes"), where("attributes")),
        identity_column=_text(item["identity_column"], where("identity_column"))
        if item.get("identity_column") is not None else None,
        n=_integer(item["n"], where("n"), 1) if item.get("n") is not None else None,
        columns=_columns(item.get("columns"), where("columns")),
        where=here,
    )


def _lines(node) -> dict[str, int]:
    """1-based line of each top-level setting and of each source and its settings in a composed YAML document."""
    out: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for key, value in node.value:
        name = str(key.value)
        out[name] = key.start_mark.line + 1
        if name == "sources" and isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                out[f"sources.{i}"] = item.start_mark.line + 1
                if isinstance(item, yaml.MappingNode):
                    for k, _ in item.value:
                        out[f"sources.{i}.{k.value}"] = k.start_mark.line + 1
    return out


# --- building -----------------------------------------------------------------------------------------------
def _load_sources(config: ProxyConfig, root: Path) -> list[tuple[ProxySource, pd.DataFrame]]:
    loaded = []
    for src in config.sources:
        frame = labels_frame(find_label_file(src.labels, root), root)
        loaded.append((src, standard_attributes(frame, {**config.columns, **src.columns}, source=src.labels)))
    return loaded


def _require(config: ProxyConfig, out: bool = False) -> None:
    if config.kind not in KINDS:
        raise SettingsError("give --kind identity|attribute (or 'kind:' in --config)")
    if out and not config.out:
        raise SettingsError("give --out FILE (or 'out:' in --config)")
    if not config.sources:
        raise SettingsError("give --labels CSV (or 'sources:' / 'labels:' in --config)")


def build_proxy_triplets(config: ProxyConfig) -> tuple[pd.DataFrame, ProxyReport]:
    """The proxy triplets a recipe describes (:func:`perface.annotations.proxy.identity_triplets` or
    :func:`~perface.annotations.proxy.attribute_triplets`), checked to be disjoint by split when split.

    Returns:
        ``(triplets, report)``; the triplets' paths are relative to the dataset root (``config.root``, default
        :func:`perface.io.files.data_root`).

    Raises:
        SettingsError: no kind or label file; a label file without a named column or attribute; identity
            triplets from several files; no dataset root.
        LabelFileError: an unreadable label file.
        AnnotationError: labels that cannot give triplets (see the builders).
    """
    _require(config)
    root = data_root(config.root)
    loaded = _load_sources(config, root)
    if config.kind == "identity":
        if len(loaded) != 1:
            raise SettingsError(f"{config.where('sources')}: identity triplets take exactly one label file "
                                f"(got {len(loaded)})")
        src, frame = loaded[0]
        column = config.identity_column or "identity"
        if column not in frame.columns:
            raise SettingsError(f"{src.labels} has no '{column}' column (pass --identity-column)")
        tri, report = identity_triplets(frame, config.n, seed=config.seed, identity_column=column,
                                        negative_same=config.negative_same, root=root, fractions=config.split)
    else:
        sources = []
        for src, frame in loaded:
            wanted = src.attributes or config.attributes or tuple(a for a in ATTRIBUTES if a in frame.columns)
            missing = [a for a in wanted if a not in frame.columns]
            if missing or not wanted:
                raise SettingsError(f"{src.labels} has no {', '.join(missing) or ', '.join(ATTRIBUTES)} label "
                                    f"(columns: {', '.join(frame.columns)})")
            person = src.identity_column or config.identity_column
            if person and person not in frame.columns:
                raise SettingsError(f"{src.labels} has no '{person}' column (identity_column)")
            name = src.name or Path(src.labels).parent.name or src.labels
            sources.append(AttributeSource(name=name, labels=frame, attributes=tuple(wanted), identity_column=person,
                                           n=src.n))
        tri, report = attribute_triplets(sources, config.n, seed=config.seed, min_age_gap=config.min_age_gap,
                                         root=root, fractions=config.split, shown_from_age=config.shown_from_age,
                                         vague=config.vague)
    if config.split is not None and len(tri):
        identities: dict[str, str] = {}
        for src, frame in loaded:
            column = src.identity_column or config.identity_column or ("identity" if config.kind == "identity"
                                                                        else None)
            if column and column in frame.columns:
                identities.update(zip(frame["path"], frame[column]))
        leaks = check_disjoint(tri, identities or None)
        if leaks:  # a guard against regressions
            raise AnnotationError(f"internal error, split not disjoint: {leaks[0]}")
    return tri, report


@dataclass
class ProxyRun:
    """What :func:`write_proxy_triplets` made and wrote."""

    config: ProxyConfig
    triplets: pd.DataFrame
    report: ProxyReport
    root: Path
    out: Path

    @property
    def by_person(self) -> bool:
        """Whether the split keeps people apart too (identity triplets, or sources with an identity column)."""
        return self.config.kind == "identity" or bool(
            self.config.identity_column or any(s.identity_column for s in self.config.sources))

    def lines(self) -> list[str]:
        """What ``perface triplets from-labels`` prints."""
        r = self.report.as_dict()
        out = [f"made {r['made']} of {r['requested']} proxy-{self.config.kind} triplets from {r['images_used']} images "
               f"(seed {self.config.seed}); paths relative to {self.root}",
               "per source: " + "  ".join(f"{k} {v}" for k, v in r["per_source"].items()),
               "per stratum: " + "  ".join(f"{k} {v}" for k, v in r["per_stratum"].items())]
        if r.get("per_split"):
            out.append("per split: " + "  ".join(f"{k} {v}" for k, v in r["per_split"].items())
                       + "  (disjoint by image" + (" and identity" if self.by_person else "") + ", 0 dropped)")
        if r.get("unseen"):
            out.append("attribute not shown (never counted as a difference): "
                       + "  ".join(f"{k} {v}" for k, v in r["unseen"].items()))
        if r["skipped"]:
            out.append("label rows skipped: " + "  ".join(f"{k} {v}" for k, v in r["skipped"].items()))
        out.append(f"wrote {self.out}")
        return out

    def to_dict(self) -> dict:
        return {**self.report.as_dict(), "kind": self.config.kind, "seed": self.config.seed, "root": str(self.root),
                "out": str(self.out), "config": self.config.to_dict()}


def write_proxy_triplets(config: ProxyConfig) -> ProxyRun:
    """:func:`build_proxy_triplets` and write them to ``config.out``.

    Raises:
        SettingsError: no ``out`` (and see :func:`build_proxy_triplets`).
        AnnotationError: the labels give no triplet.
    """
    _require(config, out=True)
    tri, report = build_proxy_triplets(config)
    if not len(tri):
        raise AnnotationError("the labels yield no triplet (too few labelled images per group?)")
    out = write_triplets(tri, config.out)
    return ProxyRun(config, tri, report, data_root(config.root), out)
