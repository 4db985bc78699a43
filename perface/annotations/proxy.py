"""Proxy triplets built from labels when no human judgments exist.

Both kinds carry ``p_a = 1.0`` (``a`` is taken to be the more similar candidate), empty ``n_a`` / ``n_b`` (no
votes were cast), ``source`` and ``stratum``:

* **proxy-identity** (:func:`identity_triplets`): ``anchor`` and ``a`` are two images of the same person,
  ``b`` is an image of someone else. The anchor's identity is drawn uniformly among identities with at least
  two images (so people with hundreds of images do not dominate), ``b``'s identity uniformly among the
  others (optionally restricted to those sharing ``negative_same`` attributes with the anchor, e.g. gender:
  harder negatives). ``stratum`` names what differs between anchor and ``b``: ``identity``, or
  ``identity+gender`` when gender labels are given and differ.
* **proxy-attribute** (:func:`attribute_triplets`): ``a`` shares the anchor's gender, ethnicity (``race``) and
  age band (whichever of these the source labels); ``b`` differs in one or more of them, and ``stratum`` names
  exactly which, in the order gender, race, age: ``gender``, ``race``, ``age``, ``gender+age``, ... Ages count
  as different only when their bands are at least ``min_age_gap`` bands apart (``b`` candidates 1..gap-1
  bands away are never used: too close to call). For each triplet the stratum is drawn uniformly among those
  with candidates for that anchor, so single-attribute differences (the hard, informative ones) are as common
  as multi-attribute ones. With ``identity`` labels, ``a`` and ``b`` are never the anchor's own person.
  Only differences a face can *show* count: an attribute may be marked unseen for faces younger than an age
  (``shown_from_age``, e.g. gender below 10: infants' gender is not visible in a face chip) or for label values
  that name no visible group (``vague``, e.g. UTKFace's race ``other``). Such a face never differs from
  another in that attribute (no stratum claims it); ``a`` shares the anchor's unseen value exactly (an infant
  anchor's ``a`` is an infant of its race and band), and where the anchor's own value is unseen ``b`` may have
  any value of that attribute (the stratum still names only what visibly differs).

Triplets never mix sources (datasets): all three images come from the same label file, so a difference in
crop or image style between datasets cannot stand in for the attribute. The triplet budget ``n`` is split
over sources in proportion to their usable images unless each source gives its own ``n``.
Everything is drawn from one seeded generator: the same labels, options and seed give the same file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from perface.annotations.labels import AGE_BANDS, age_band, age_band_lower
from perface.progress import track
from perface.annotations.schema import SPLITS
from perface.annotations.split import assign_units, parse_fractions
from perface.errors import AnnotationError, SettingsError

__all__ = ["ATTRIBUTES", "ATTRIBUTE_ALIASES", "UNSEEN", "AttributeSource", "ProxyReport", "attribute_triplets",
           "identity_triplets", "standard_attributes"]

#: Attributes of attribute-consistency triplets, in ``stratum`` order.
ATTRIBUTES = ("gender", "race", "age")
#: Label columns read as each attribute when no column is named for it (first found wins).
ATTRIBUTE_ALIASES = {"age": ("age", "age_group"), "race": ("race", "ethnicity"), "gender": ("gender", "sex")}
_MAX_TRIES_PER_TRIPLET = 50


@dataclass
class AttributeSource:
    """One label file's images for attribute triplets.

    ``labels`` has a root-relative ``path`` and one column per attribute (named ``gender``, ``race``, ``age``;
    ``age`` in years or an age band), plus ``identity`` when ``identity_column`` is set.
    """

    name: str
    labels: pd.DataFrame
    attributes: tuple[str, ...]
    identity_column: str | None = None
    n: int | None = None


#: The value an unseen attribute takes in a face's key (see ``shown_from_age`` and ``vague``).
UNSEEN = "?"


@dataclass
class ProxyReport:
    """What a proxy build used and made."""

    requested: int = 0
    made: int = 0
    images_used: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count of label rows not usable
    per_source: dict = field(default_factory=dict)
    per_stratum: dict = field(default_factory=dict)
    per_split: dict = field(default_factory=dict)
    unseen: dict = field(default_factory=dict)  # "source: attribute" -> count of faces where it is unseen

    def as_dict(self) -> dict:
        out = {"requested": self.requested, "made": self.made, "images_used": self.images_used,
               "skipped": self.skipped, "per_source": self.per_source, "per_stratum": self.per_stratum}
        if self.per_split:
            out["per_split"] = self.per_split
        if self.unseen:
            out["unseen"] = self.unseen
        return out


def standard_attributes(frame: pd.DataFrame, columns: Mapping[str, str] | None = None, source: str = "labels"
                        ) -> pd.DataFrame:
    """A label table with its columns also available under the names proxy triplets and sampling use.

    Args:
        frame: Label table (``path`` plus label columns).
        columns: ``{name: column}``: read ``column`` as ``name`` (e.g. ``{"age": "age_group"}``); for ``gender``,
            ``race``, ``age`` not named here the first of :data:`ATTRIBUTE_ALIASES` present is used.
        source: The label file, for messages.

    Returns:
        A copy of ``frame`` with a column ``name`` for every mapped column (the original columns stay).

    Raises:
        SettingsError: a named column is not in the table.
    """
    out = frame.copy()
    mapping = dict(columns or {})
    for name, candidates in ATTRIBUTE_ALIASES.items():
        if name not in mapping:
            found = next((c for c in candidates if c in out.columns), None)
            if found:
                mapping[name] = found
    for name, col in mapping.items():
        if col not in out.columns:
            raise SettingsError(f"{source} has no column {col!r} for {name} (columns: {', '.join(frame.columns)})")
        if col != name:
            out[name] = out[col]
    return out


def _usable(labels: pd.DataFrame, columns: list[str], root: Path | None, name: str, report: ProxyReport
            ) -> pd.DataFrame:
    frame = labels.copy()
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        if col not in frame.columns:
            raise AnnotationError(f"labels of {name!r} have no '{col}' column (found: {', '.join(frame.columns)})")
        values = frame[col].astype(str).str.strip()
        if col == "age":
            values = values.map(age_band)
            bad = values.isna().to_numpy()
        else:
            values = values.str.lower()
            bad = values.isin(["", "nan", "none", "unknown", "na", "n/a"]).to_numpy()
        frame[col] = values
        if bad.any():
            key = f"{name}: no {col} label"
            report.skipped[key] = report.skipped.get(key, 0) + int((bad & ok).sum())
        ok &= ~bad
    if root is not None:
        exists = np.array([(root / p).is_file() for p in frame["path"]], dtype=bool)
        missing = ok & ~exists
        if missing.any():
            key = f"{name}: image missing"
            report.skipped[key] = report.skipped.get(key, 0) + int(missing.sum())
        ok &= exists
    dup = frame["path"].duplicated().to_numpy()
    if (dup & ok).any():
        key = f"{name}: duplicate path"
        report.skipped[key] = report.skipped.get(key, 0) + int((dup & ok).sum())
    ok &= ~dup
    return frame[ok].reset_index(drop=True)


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    if w.sum() <= 0:
        return [0] * len(weights)
    exact = total * w / w.sum()
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return out.tolist()


def _unseen_masks(frame: pd.DataFrame, attrs: list[str], shown_from_age: Mapping[str, int],
                  vague: Mapping[str, tuple[str, ...]], name: str, report: ProxyReport) -> dict[str, np.ndarray]:
    """Per attribute: which faces of ``frame`` (usable labels, ages as bands) cannot show it."""
    masks = {}
    for a in attrs:
        if a == "age":
            continue
        mask = np.zeros(len(frame), dtype=bool)
        if a in shown_from_age:
            if "age" not in frame.columns or "age" not in attrs:
                raise SettingsError(f"source {name!r}: shown_from_age needs the source's age labels (add 'age' to "
                                    "its attributes)")
            mask |= frame["age"].map(age_band_lower).to_numpy() < int(shown_from_age[a])
        if a in vague:
            mask |= frame[a].isin([str(v).strip().lower() for v in vague[a]]).to_numpy()
        if mask.any():
            masks[a] = mask
            key = f"{name}: {a}"
            report.unseen[key] = report.unseen.get(key, 0) + int(mask.sum())
    return masks


def attribute_triplets(sources: list[AttributeSource], n: int, seed: int = 0, min_age_gap: int = 1,
                       root: str | Path | None = None, fractions=None, progress: bool | None = None,
                       shown_from_age: Mapping[str, int] | None = None,
                       vague: Mapping[str, tuple[str, ...]] | None = None) -> tuple[pd.DataFrame, ProxyReport]:
    """Attribute-consistency proxy triplets (``source = proxy-attribute``); see the module docstring.

    Args:
        sources: Label sets; triplets are drawn within each.
        n: Total number of triplets (split over sources by usable images unless each source has ``n``).
        seed: Random seed.
        min_age_gap: Bands apart for ages to count as different (1 = any other band).
        root: Dataset root; when given, label rows whose image is missing are skipped (and counted).
        fractions: ``(train, val, test)`` shares: images (people, with an identity column) are first given to
            splits, stratified by attribute group, and each split's triplets are drawn from its own images, so
            the ``split`` column is disjoint by image with nothing dropped.
        shown_from_age: ``{attribute: years}``: faces younger than this (an age band by its lower bound) do
            not show the attribute, e.g. ``{"gender": 10}``.
        vague: ``{attribute: [values]}``: label values that name no visible group, e.g. ``{"race": ["other"]}``
            (compared case-insensitively).

    Returns:
        ``(triplets, report)``. Fewer than ``n`` triplets only if the labels cannot supply more distinct ones.

    Raises:
        SettingsError: ``min_age_gap`` below 1; ``shown_from_age`` or ``vague`` for ``age`` (age is always
            shown), or ``shown_from_age`` for a source without age labels; a ``vague`` value no label has.
    """
    if min_age_gap < 1:
        raise SettingsError(f"min_age_gap must be at least 1 band (got {min_age_gap})")
    shown_from_age, vague = dict(shown_from_age or {}), dict(vague or {})
    if "age" in shown_from_age or "age" in vague:
        raise SettingsError("shown_from_age / vague apply to gender and race; every face shows an age")
    rng = np.random.default_rng(seed)
    report = ProxyReport(requested=n)
    root = Path(root) if root is not None else None
    prepared, seen_values = [], {}
    for src in sources:
        attrs = [a for a in ATTRIBUTES if a in src.attributes]
        unknown = set(src.attributes) - set(ATTRIBUTES)
        if unknown or not attrs:
            raise AnnotationError(f"source {src.name!r}: attributes must be among {', '.join(ATTRIBUTES)} "
                                  f"(got {', '.join(src.attributes) or 'none'})")
        cols = attrs + ([src.identity_column] if src.identity_column else [])
        frame = _usable(src.labels, cols, root, src.name, report)
        for a in attrs:
            seen_values.setdefault(a, set()).update(frame[a].astype(str))
        # the split is stratified by the labels as given, so unseen attributes leave each image's split as is
        groups = ["|".join(map(str, k)) for k in zip(*(frame[a] for a in attrs))]
        for a, mask in _unseen_masks(frame, attrs, shown_from_age, vague, src.name, report).items():
            frame[a] = np.where(mask, UNSEEN, frame[a].to_numpy(dtype=object))
        prepared.append((src, attrs, frame, groups))
    for a, values in vague.items():  # a misspelt value would silently change nothing
        absent = [v for v in values if str(v).strip().lower() not in seen_values.get(a, set())]
        if absent:
            raise SettingsError(f"vague: {a} value {absent[0]!r} occurs in no label (values: "
                                f"{', '.join(sorted(seen_values.get(a, set()))) or 'none'})")
    if all(src.n is not None for src in sources):
        quotas = [int(src.n) for src in sources]
        report.requested = sum(quotas)
    else:
        quotas = _allocate(n, [len(f) for _, _, f, _ in prepared])
    rows = []
    for (src, attrs, frame, groups), quota in zip(prepared, quotas):
        if fractions is None:
            parts = [("", frame, quota)]
        else:
            unit = frame[src.identity_column] if src.identity_column else frame["path"]
            owner = assign_units(unit, fractions, seed, groups)
            shares = _allocate(quota, list(parse_fractions(fractions)))
            parts = [(sp, frame[owner == sp].reset_index(drop=True), q) for sp, q in zip(SPLITS, shares)]
        made_here = 0
        for split, part, q in parts:
            label = f"{src.name} {split}".strip()
            made = _attribute_source(part, attrs, src.identity_column, q, rng, min_age_gap, label, progress)
            rows.extend(m + (split,) for m in made)
            made_here += len(made)
        report.per_source[src.name] = made_here
        report.images_used += len(frame)
    out = pd.DataFrame(rows, columns=["anchor", "a", "b", "stratum", "split"])
    out.insert(3, "p_a", 1.0)
    out.insert(4, "source", "proxy-attribute")
    return _finish(out, report, fractions)


def _finish(out: pd.DataFrame, report: ProxyReport, fractions) -> tuple[pd.DataFrame, ProxyReport]:
    if fractions is None:
        out = out.drop(columns="split")
    else:
        report.per_split = {sp: int((out["split"] == sp).sum()) for sp in SPLITS}
    report.made = len(out)
    report.per_stratum = out["stratum"].value_counts().sort_index().to_dict()
    return out, report


def _attribute_source(frame: pd.DataFrame, attrs: list[str], identity_column: str | None, quota: int,
                      rng: np.random.Generator, min_age_gap: int, name: str, progress) -> list[tuple]:
    if quota <= 0 or len(frame) < 3:
        return []
    paths = frame["path"].to_numpy()
    values = {}
    for a in attrs:
        if a == "age":
            values[a] = frame["age"].map(AGE_BANDS.index).to_numpy()
        else:
            values[a] = frame[a].to_numpy()
    ident = frame[identity_column].to_numpy() if identity_column else None
    keys = list(zip(*(values[a] for a in attrs)))
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    groups_arr = {k: np.asarray(v) for k, v in groups.items()}
    subsets = [s for r in range(1, len(attrs) + 1) for s in combinations(range(len(attrs)), r)]
    cand_cache: dict[tuple, list[tuple[str, np.ndarray]]] = {}

    def differs(pos: int, x, y) -> bool:
        if attrs[pos] == "age":
            return abs(int(x) - int(y)) >= min_age_gap
        return x != y and UNSEEN not in (x, y)  # a difference counts only where both faces show it

    def same(pos: int, x, y) -> bool:  # x a candidate's value, y the anchor's
        return x == y or y == UNSEEN  # an anchor that does not show an attribute claims nothing about it

    def strata_for(key: tuple) -> list[tuple[str, np.ndarray]]:
        if key not in cand_cache:
            found = []
            for s in subsets:
                members = [groups_arr[g] for g in groups_arr
                           if all(differs(p, g[p], key[p]) if p in s else same(p, g[p], key[p])
                                  for p in range(len(attrs)))]
                if members:
                    found.append(("+".join(attrs[p] for p in s), np.concatenate(members)))
            cand_cache[key] = found
        return cand_cache[key]

    eligible = np.asarray([i for i, k in enumerate(keys) if len(groups[k]) >= 2 and strata_for(k)])
    if not len(eligible):
        return []
    out, seen = [], set()
    tries = 0
    bar = iter(track(range(quota), f"proxy-attribute {name}", total=quota, enabled=progress))
    while len(out) < quota and tries < quota * _MAX_TRIES_PER_TRIPLET:
        tries += 1
        anchor = int(eligible[rng.integers(len(eligible))])
        group = groups_arr[keys[anchor]]
        a = int(group[rng.integers(len(group))])
        if a == anchor or (ident is not None and ident[a] == ident[anchor]):
            continue
        strata = strata_for(keys[anchor])
        stratum, cands = strata[rng.integers(len(strata))]
        b = int(cands[rng.integers(len(cands))])
        if ident is not None and ident[b] == ident[anchor]:
            continue
        key = (anchor, a, b)
        if key in seen:
            continue
        seen.add(key)
        out.append((paths[anchor], paths[a], paths[b], stratum))
        next(bar, None)
    for _ in bar:  # close the bar when fewer were possible
        pass
    return out


def identity_triplets(labels: pd.DataFrame, n: int, seed: int = 0, identity_column: str = "identity",
                      negative_same: tuple[str, ...] = (), root: str | Path | None = None, fractions=None,
                      progress: bool | None = None) -> tuple[pd.DataFrame, ProxyReport]:
    """Identity proxy triplets (``source = proxy-identity``); see the module docstring.

    Args:
        labels: Root-relative ``path``, ``identity_column``, and any ``negative_same`` attribute columns
            (``gender`` also labels the stratum).
        n: Number of triplets.
        negative_same: Attributes ``b``'s person must share with the anchor (e.g. ``("gender",)``).
        root: Dataset root; when given, rows whose image is missing are skipped (and counted).
        fractions: ``(train, val, test)`` shares: people are first given to splits (stratified by
            ``negative_same`` attributes) and each split's triplets use only its people, so the ``split``
            column is disjoint by image and by identity with nothing dropped.
    """
    rng = np.random.default_rng(seed)
    report = ProxyReport(requested=n)
    cols = [identity_column] + list(negative_same)
    frame = _usable(labels, cols, Path(root) if root is not None else None, "identity labels", report)
    if "gender" in frame.columns and "gender" not in cols:
        frame["gender"] = frame["gender"].astype(str).str.strip().str.lower()
    report.images_used = len(frame)
    if fractions is None:
        parts = [("", frame, n)]
    else:
        strata = ["|".join(map(str, k)) for k in zip(*(frame[a] for a in negative_same))] if negative_same else None
        owner = assign_units(frame[identity_column], fractions, seed, strata)
        shares = _allocate(n, list(parse_fractions(fractions)))
        parts = [(sp, frame[owner == sp].reset_index(drop=True), q) for sp, q in zip(SPLITS, shares)]
    rows = []
    for split, part, q in parts:
        made = _identity_part(part, q, rng, identity_column, negative_same, f"proxy-identity {split}".strip(),
                              progress)
        rows.extend(m + (split,) for m in made)
    out = pd.DataFrame(rows, columns=["anchor", "a", "b", "stratum", "split"])
    out.insert(3, "p_a", 1.0)
    out.insert(4, "source", "proxy-identity")
    report.per_source["identity labels"] = len(out)
    return _finish(out, report, fractions)


def _identity_part(frame: pd.DataFrame, n: int, rng: np.random.Generator, identity_column: str,
                   negative_same: tuple[str, ...], label: str, progress) -> list[tuple]:
    if n <= 0:
        return []
    paths = frame["path"].to_numpy()
    by_id: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in
                                    frame.groupby(identity_column, sort=True).indices.items()}
    ids = np.asarray(sorted(by_id))
    anchor_ids = np.asarray([i for i in ids if len(by_id[i]) >= 2])
    if len(anchor_ids) == 0 or len(ids) < 2:
        raise AnnotationError(f"{label}: identity labels need at least one person with two images and two people "
                              f"(found {len(ids)} people, {len(anchor_ids)} with two or more images)")
    id_attr = {attr: frame.groupby(identity_column, sort=True)[attr].agg(lambda s: s.mode().iat[0]).to_dict()
               for attr in negative_same}
    neg_pool: dict[tuple, np.ndarray] = {}

    def negatives(person: str) -> np.ndarray:
        key = tuple(id_attr[a][person] for a in negative_same)
        if key not in neg_pool:
            neg_pool[key] = np.asarray([i for i in ids if all(id_attr[a][i] == v for a, v in zip(negative_same, key))])
        return neg_pool[key]

    gender = frame["gender"].to_numpy() if "gender" in frame.columns else None
    out, seen, tries = [], set(), 0
    bar = iter(track(range(n), label, total=n, enabled=progress))
    while len(out) < n and tries < n * _MAX_TRIES_PER_TRIPLET:
        tries += 1
        person = anchor_ids[rng.integers(len(anchor_ids))]
        anchor, a = (int(x) for x in rng.choice(by_id[person], size=2, replace=False))
        pool = negatives(person)
        other = pool[rng.integers(len(pool))]
        if other == person:
            continue
        b_imgs = by_id[other]
        b = int(b_imgs[rng.integers(len(b_imgs))])
        if (anchor, a, b) in seen:
            continue
        seen.add((anchor, a, b))
        stratum = "identity+gender" if gender is not None and gender[b] != gender[anchor] else "identity"
        out.append((paths[anchor], paths[a], paths[b], stratum))
        next(bar, None)
    for _ in bar:
        pass
    return out
