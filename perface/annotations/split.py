"""Leak-free train / val / test splits of a triplet file.

**Guarantee.** No image (and, when identity labels are given, no person) appears in two splits: every image
or person is owned by exactly one split, and a triplet is kept only in the split that owns all three of its
images. Triplets whose images are owned by different splits are dropped and reported.

**Algorithm** (seeded, deterministic: same triplets, fractions, identities and seed give the same split).
A *unit* is a person when identity labels cover the image, else the image itself. Two candidate
assignments of units to splits are built and the better one kept (the one containing the largest set of
triplets in exactly the target shares; ties: more triplets kept):

* *grow* (wins on sparse sets, where most images are in few triplets): units linked by triplets form
  connected components. Components are visited largest first (ties in seeded order); one no larger than
  half the smallest split's target goes whole to the split furthest below its target share, losing nothing.
  A larger component is split triplet by triplet in seeded order: a triplet whose units are all unowned goes
  to the neediest split and claims them; one whose owned units agree follows them; one whose units are
  owned by different splits is dropped.
* *random-units* (wins on dense sets, e.g. many judgments over a few thousand images): units are cut at
  random in shares proportional to the cube roots of the triplet shares, since a triplet survives only when
  its three units land together (for 0.8/0.1/0.1: half the images to train, a quarter each to val and test).

A refinement pass then moves single units between splits when that keeps more triplets without taking a
split further from its target share. Dense sets necessarily drop many triplets: the count is reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from perface.annotations.labels import labels_frame
from perface.annotations.paths import find_label_file
from perface.annotations.schema import SPLITS, read_triplets, write_triplets
from perface.errors import AnnotationError, SettingsError
from perface.io.files import data_root

__all__ = ["SplitResult", "SplitRun", "assign_units", "check_disjoint", "parse_fractions",
           "split_file", "split_triplets"]


@dataclass
class SplitResult:
    """Kept triplets (input order, ``split`` column set), dropped triplets and counts."""

    triplets: pd.DataFrame
    dropped: pd.DataFrame
    counts: dict = field(default_factory=dict)


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (or ``"80,10,10"``) -> normalised ``(train, val, test)`` fractions.

    Raises:
        SettingsError: not three non-negative numbers with a positive sum.
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise SettingsError(f"fractions {text!r} are not numbers; give three like 0.8,0.1,0.1") from None
    else:
        try:
            values = [float(v) for v in text]
        except (TypeError, ValueError):
            raise SettingsError(f"fractions {text!r} are not numbers; give three like 0.8,0.1,0.1") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise SettingsError(f"fractions {text!r}: give three non-negative numbers (train,val,test) like 0.8,0.1,0.1")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


def _units(triplets: pd.DataFrame, identities: Mapping[str, str] | None) -> tuple[np.ndarray, list[str]]:
    names: dict[str, int] = {}
    cols = []
    for col in ("anchor", "a", "b"):
        ids = []
        for p in triplets[col].astype(str):
            person = identities.get(p) if identities else None
            key = f"id:{person}" if person not in (None, "") else f"img:{p}"
            ids.append(names.setdefault(key, len(names)))
        cols.append(ids)
    return np.asarray(cols, dtype=np.int64).T.reshape(-1, 3), list(names)


def split_triplets(triplets: pd.DataFrame, fractions: Sequence[float] | str = (0.8, 0.1, 0.1), seed: int = 0,
                   identities: Mapping[str, str] | None = None, refine_passes: int = 2) -> SplitResult:
    """Split triplets into train/val/test, disjoint by image and (with ``identities``) by person.

    Args:
        triplets: Canonical triplets (any ``split`` column is replaced).
        fractions: Target shares of (train, val, test) triplets; a zero share leaves that split empty.
        seed: Random seed.
        identities: Root-relative image path -> person; images not in it are their own unit.
        refine_passes: Passes of the unit-moving refinement.

    Returns:
        :class:`SplitResult`; ``counts`` holds per-split triplets, ``dropped``, ``total``, ``images`` (and
        ``identities``) per split, ``images_without_identity`` and ``method`` (``grow`` or ``random-units``).
    """
    frac = np.asarray(parse_fractions(fractions))
    rng = np.random.default_rng(seed)
    tri = triplets.reset_index(drop=True)
    n = len(tri)
    units, unit_names = _units(tri, identities)
    n_units = len(unit_names)
    method = "grow"
    if n:
        grown = _grow(units, n_units, frac, rng)
        scattered = _random_units(n_units, frac, rng)
        if _score(scattered, units, frac) > _score(grown, units, frac):
            owner, method = scattered, "random-units"
        else:
            owner = grown
        _refine(owner, units, n_units, frac, rng, refine_passes)
        own3 = owner[units]
        same = (own3[:, 0] == own3[:, 1]) & (own3[:, 0] == own3[:, 2]) & (own3[:, 0] >= 0)
        split_idx = np.where(same, own3[:, 0], -1)
    else:
        split_idx = np.zeros(0, dtype=np.int64)
    out = tri.copy()
    out["split"] = np.asarray(SPLITS, dtype=object)[np.clip(split_idx, 0, 2)] if n else pd.Series(dtype=object)
    kept = out[split_idx >= 0].reset_index(drop=True)
    dropped = tri[split_idx < 0].reset_index(drop=True)
    counts = {s: int((kept["split"] == s).sum()) for s in SPLITS}
    counts["dropped"] = int(len(dropped))
    counts["total"] = int(n)
    counts["method"] = method
    counts["images"] = {s: int(len(_images(kept[kept["split"] == s]))) for s in SPLITS}
    if identities:
        counts["identities"] = {s: int(len({identities[p] for p in _images(kept[kept["split"] == s])
                                           if identities.get(p)})) for s in SPLITS}
        counts["images_without_identity"] = int(sum(1 for p in _images(tri) if not identities.get(p)))
    return SplitResult(triplets=kept, dropped=dropped, counts=counts)


def _kept_counts(owner: np.ndarray, units: np.ndarray) -> np.ndarray:
    own3 = owner[units]
    same = (own3[:, 0] == own3[:, 1]) & (own3[:, 0] == own3[:, 2]) & (own3[:, 0] >= 0)
    return np.bincount(own3[same, 0], minlength=3).astype(float)


def _score(owner: np.ndarray, units: np.ndarray, frac: np.ndarray) -> tuple[float, float]:
    """Size of the largest set with exactly the target shares that the kept triplets contain, then kept total."""
    kept = _kept_counts(owner, units)
    active = frac > 0
    return float(np.min(kept[active] / frac[active])), float(kept.sum())


def _grow(units: np.ndarray, n_units: int, frac: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole small components to the neediest split; large ones triplet by triplet (see the module docstring)."""
    n = len(units)
    active = np.flatnonzero(frac > 0)
    uf = _UnionFind(n_units)
    for t in range(n):
        uf.union(units[t, 0], units[t, 1])
        uf.union(units[t, 0], units[t, 2])
    comp_of_triplet = np.asarray([uf.find(int(units[t, 0])) for t in range(n)], dtype=np.int64)
    comps, comp_sizes = np.unique(comp_of_triplet, return_counts=True)
    order = np.lexsort((rng.permutation(len(comps)), -comp_sizes))
    small_cap = max(1.0, 0.5 * min(frac[active] * n))
    by_comp = pd.Series(np.arange(n)).groupby(comp_of_triplet).indices
    owner = np.full(n_units, -1, dtype=np.int64)
    count = np.zeros(3)

    def neediest(extra: float = 1.0) -> int:
        deficit = frac * (count.sum() + extra) - count
        deficit[frac == 0] = -np.inf
        return int(np.argmax(deficit))

    for ci in order:
        members = by_comp[comps[ci]]
        size = len(members)
        if size <= small_cap:
            s = neediest(size)
            owner[np.unique(units[members])] = s
            count[s] += size
            continue
        for t in members[rng.permutation(size)]:
            u = units[t]
            owned = {int(owner[x]) for x in u if owner[x] >= 0}
            if len(owned) > 1:
                continue
            s = owned.pop() if owned else neediest()
            owner[u[owner[u] < 0]] = s
            count[s] += 1
    return owner


def _random_units(n_units: int, frac: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units cut at random in shares proportional to the cube root of the triplet shares.

    A triplet survives when its three units land in the same split, so with unit shares ``q`` the kept
    triplets come in proportions ``q**3``: cube roots make those the target shares. Best for dense sets.
    """
    q = np.cbrt(frac)
    q = q / q.sum()
    take = np.floor(q * n_units).astype(int)
    for i in np.argsort(-(q * n_units - take), kind="stable")[: n_units - take.sum()]:
        take[i] += 1
    owner = np.repeat(np.arange(3), take)
    return owner[rng.permutation(n_units)].astype(np.int64)


def _refine(owner: np.ndarray, units: np.ndarray, n_units: int, frac: np.ndarray, rng: np.random.Generator,
            passes: int) -> None:
    """Move single units between splits when that keeps more triplets without worsening the balance."""
    n = len(units)
    if not passes or not n:
        return
    active = np.flatnonzero(frac > 0)
    unit_slots = pd.Series(np.arange(3 * n)).groupby(units.reshape(-1)).indices
    own3 = owner[units]
    tri_split = np.where((own3[:, 0] == own3[:, 1]) & (own3[:, 0] == own3[:, 2]), own3[:, 0], -1)
    count = np.bincount(tri_split[tri_split >= 0], minlength=3).astype(float)
    for _ in range(passes):
        moved = 0
        for u in rng.permutation(n_units):
            ts = np.unique(unit_slots[u] // 3)
            cur = int(owner[u])
            others = units[ts]
            kept_now = int((tri_split[ts] >= 0).sum())
            best, best_gain, best_ok = cur, 0, None
            for s in active:
                if s == cur:
                    continue
                own = np.where(others == u, s, owner[others])
                ok = (own[:, 0] == own[:, 1]) & (own[:, 0] == own[:, 2])
                gain = int(ok.sum()) - kept_now
                if gain <= best_gain:
                    continue
                new_count = count.copy()
                np.subtract.at(new_count, tri_split[ts][tri_split[ts] >= 0], 1)
                new_count[s] += ok.sum()
                if _imbalance(new_count, frac) > _imbalance(count, frac) + 1e-9:
                    continue
                best, best_gain, best_ok = int(s), gain, ok
            if best != cur:
                owner[u] = best
                np.subtract.at(count, tri_split[ts][tri_split[ts] >= 0], 1)
                tri_split[ts] = np.where(best_ok, best, -1)
                count[best] += best_ok.sum()
                moved += 1
        if not moved:
            break


def _imbalance(count: np.ndarray, frac: np.ndarray) -> float:
    total = count.sum()
    if total <= 0:
        return 0.0
    return float(np.abs(count / total - frac).sum())


def _images(frame: pd.DataFrame) -> set[str]:
    return set(frame["anchor"]) | set(frame["a"]) | set(frame["b"])


def check_disjoint(triplets: pd.DataFrame, identities: Mapping[str, str] | None = None) -> list[str]:
    """Leaks between splits: one message per image (or person) that appears in more than one split."""
    problems = []
    if "split" not in triplets.columns:
        return ["no split column"]
    where: dict[str, set] = {}
    persons: dict[str, set] = {}
    for col in ("anchor", "a", "b"):
        for p, s in zip(triplets[col].astype(str), triplets["split"].astype(str)):
            where.setdefault(p, set()).add(s)
            if identities and identities.get(p):
                persons.setdefault(identities[p], set()).add(s)
    problems += [f"image {p} in {', '.join(sorted(s))}" for p, s in sorted(where.items()) if len(s) > 1]
    problems += [f"person {p} in {', '.join(sorted(s))}" for p, s in sorted(persons.items()) if len(s) > 1]
    return problems


def assign_units(units: Sequence, fractions: Sequence[float] | str = (0.8, 0.1, 0.1), seed: int = 0,
                 strata: Sequence | None = None) -> np.ndarray:
    """Give whole units (images or people) to splits before any triplet is drawn (used for proxy sets).

    Units are shuffled (seeded) within each stratum (e.g. attribute group) and cut by ``fractions``, so every
    split gets its share of each stratum. Returns, per row, the split name; rows of one unit share it.
    """
    frac = np.asarray(parse_fractions(fractions))
    rng = np.random.default_rng(seed)
    units = np.asarray([str(u) for u in units], dtype=object)
    strata_arr = np.asarray(["" if s is None else str(s) for s in strata], dtype=object) if strata is not None \
        else np.full(len(units), "", dtype=object)
    first: dict[str, str] = {}
    for u, s in zip(units, strata_arr):
        first.setdefault(u, s)
    by_stratum: dict[str, list[str]] = {}
    for u, s in first.items():
        by_stratum.setdefault(s, []).append(u)
    owner: dict[str, str] = {}
    carry = np.zeros(3)  # running remainders so that small strata do not all round to train
    for s in sorted(by_stratum):
        members = sorted(by_stratum[s])
        members = [members[i] for i in rng.permutation(len(members))]
        exact = frac * len(members) + carry
        take = np.floor(exact).astype(int)
        short = len(members) - take.sum()
        for i in np.argsort(-(exact - take), kind="stable")[:short]:
            take[i] += 1
        carry = exact - take
        start = 0
        for k in range(3):
            for u in members[start:start + take[k]]:
                owner[u] = SPLITS[k]
            start += take[k]
    return np.asarray([owner[u] for u in units], dtype=object)


@dataclass
class SplitRun:
    """What :func:`split_file` wrote: the :class:`SplitResult` counts, where, and whether people were kept apart."""

    out: Path
    counts: dict
    by_identity: bool
    dropped_path: Path | None = None

    def lines(self) -> list[str]:
        """What ``perface triplets split`` prints."""
        c = self.counts
        out = [f"train {c['train']}  val {c['val']}  test {c['test']}  dropped {c['dropped']} of {c['total']} "
               f"(to keep splits disjoint by image{' and identity' if self.by_identity else ''})",
               "images: " + "  ".join(f"{k} {v}" for k, v in c["images"].items())]
        if self.by_identity:
            out.append("identities: " + "  ".join(f"{k} {v}" for k, v in c["identities"].items())
                       + f"  (images without identity: {c['images_without_identity']})")
        out.append(f"wrote {self.out}" + (f" and {self.dropped_path}" if self.dropped_path else ""))
        return out

    def to_dict(self) -> dict:
        return {"out": str(self.out), "dropped_file": str(self.dropped_path) if self.dropped_path else None,
                "by_identity": self.by_identity, **self.counts}


def split_file(path: str | os.PathLike, out: str | os.PathLike, *, fractions: Sequence[float] | str = "0.8,0.1,0.1",
               seed: int = 0, identities: str | os.PathLike | None = None, identity_column: str = "identity",
               root: str | os.PathLike | None = None, dropped: str | os.PathLike | None = None) -> SplitRun:
    """Split a triplets file (:func:`split_triplets`) and write the kept triplets (and, with ``dropped``, the
    dropped ones).

    Args:
        path: Triplets file.
        out: File for the kept triplets with their ``split`` column.
        fractions: ``(train, val, test)`` shares or ``"0.8,0.1,0.1"``.
        seed: Random seed.
        identities: Label file with ``path`` and ``identity_column`` (e.g. ``lfw/gender.csv``, relative to the
            current folder or the dataset root): keeps people disjoint too.
        identity_column: Identity column of ``identities``.
        root: Dataset root the triplets' paths are relative to (default :func:`perface.io.files.data_root`);
            only needed with ``identities``.
        dropped: Also write the dropped triplets here.

    Raises:
        SettingsError: bad fractions, no dataset root, or no ``identity_column`` in the label file.
        AnnotationError: a malformed triplets file, or no image of it listed in the label file.
    """
    fractions = parse_fractions(fractions)
    tri = read_triplets(path)
    identity_map = None
    if identities:
        folder = data_root(root)
        labels = labels_frame(find_label_file(identities, folder), folder)
        if identity_column not in labels.columns:
            raise SettingsError(f"{identities} has no '{identity_column}' column (columns: "
                                f"{', '.join(labels.columns)}); pass --identity-column")
        identity_map = dict(zip(labels["path"], labels[identity_column]))
        images = set(tri["anchor"]) | set(tri["a"]) | set(tri["b"])
        if not images & set(identity_map):
            raise AnnotationError(f"no image of {path} is listed in {identities} (paths must match relative to "
                                  f"the dataset root {folder}; e.g. {next(iter(sorted(images)), '?')} vs "
                                  f"{next(iter(identity_map), '?')})")
    result = split_triplets(tri, fractions, seed=seed, identities=identity_map)
    leaks = check_disjoint(result.triplets, identity_map)
    if leaks:  # cannot happen; a guard against regressions
        raise AnnotationError(f"internal error, split not disjoint: {leaks[0]}")
    out = write_triplets(result.triplets, out)
    dropped_path = write_triplets(result.dropped, dropped) if dropped else None
    return SplitRun(out, result.counts, identity_map is not None, dropped_path)
