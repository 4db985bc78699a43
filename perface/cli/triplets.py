"""``perface triplets``: inspect, aggregate, split, sample and build triplet files.

Sub-commands:

* ``stats FILE``: counts, agreement (mean pairwise, Krippendorff's alpha), per-annotator table, how often
  images repeat (judgments or triplets file; ``--json`` for machine-readable output).
* ``aggregate JUDGMENTS --out FILE``: votes -> triplets, optionally leaving out low-quality annotators.
* ``split FILE --out FILE``: seeded train/val/test split, disjoint by image (and by person with
  ``--identities``); reports how many triplets were dropped to keep it so.
* ``sample --images DIR --n N --strategy random|stratified|uncertain --out FILE``: triplets for a new
  annotation campaign, as CSV and (``--label-studio``) Label Studio tasks.
* ``from-labels``: proxy triplets from identity or attribute labels (``--config FILE`` or flags).
* ``labeling-config``: print the Label Studio labeling config of the triplet task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("triplets", help="inspect, aggregate, split, sample and build triplet files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="triplets_command", metavar="SUBCOMMAND", parser_class=type(p))

    s = sub.add_parser("stats", help="counts, agreement, per-annotator table, image repetition")
    s.add_argument("file", help="judgments or triplets file (CSV or Parquet)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.add_argument("--top", type=int, default=20, metavar="N",
                   help="annotators and images listed in the tables (default: 20; 0 = all)")
    s.set_defaults(func=run_stats)

    a = sub.add_parser("aggregate", help="votes -> triplets (n_a, n_b, p_a), optional annotator filtering")
    a.add_argument("file", help="judgments file")
    a.add_argument("--out", required=True, help="triplets file to write (.csv or .parquet)")
    a.add_argument("--min-agreement", type=float, metavar="X", help="drop annotators with LOO agreement < X")
    a.add_argument("--min-gold-accuracy", type=float, metavar="X", help="drop annotators with gold accuracy < X")
    a.add_argument("--min-compared", type=int, default=5, metavar="N",
                   help="judge agreement only for annotators with at least N comparisons (default: 5)")
    a.set_defaults(func=run_aggregate)

    sp = sub.add_parser("split", help="seeded train/val/test split, disjoint by image (and person)")
    sp.add_argument("file", help="triplets file")
    sp.add_argument("--out", required=True, help="split triplets file to write (kept triplets + split column)")
    sp.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test shares (default: 0.8,0.1,0.1)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--identities", metavar="CSV",
                    help="label file with path and identity columns (e.g. lfw/gender.csv): keep people disjoint")
    sp.add_argument("--identity-column", default="identity")
    sp.add_argument("--root", help="dataset root (default: $PERFACE_DATA); needed with --identities")
    sp.add_argument("--dropped", metavar="FILE", help="also write the dropped triplets here")
    sp.set_defaults(func=run_split)

    sa = sub.add_parser("sample", help="choose triplets for a new annotation campaign")
    sa.add_argument("--images", required=True, metavar="DIR", help="folder of images (searched recursively)")
    sa.add_argument("--n", type=int, required=True, help="number of triplets")
    sa.add_argument("--strategy", choices=("random", "stratified", "uncertain"), default="random")
    sa.add_argument("--out", required=True, help="triplets to annotate (.csv or .parquet)")
    sa.add_argument("--label-studio", metavar="JSON", help="also write Label Studio tasks here")
    sa.add_argument("--url-prefix", default="/data/local-files/?d=",
                    help="prefix of image URLs in Label Studio tasks (default: local-files serving)")
    sa.add_argument("--root", help="dataset root the output paths are relative to (default: $PERFACE_DATA if "
                                   "it contains --images, else --images itself)")
    sa.add_argument("--labels", metavar="CSV", help="attribute labels (stratified)")
    sa.add_argument("--attributes", default="gender,race,age", help="attributes to stratify by")
    sa.add_argument("--model", help="model for the uncertain strategy, loaded with perface.load")
    sa.add_argument("--pool-factor", type=int, default=20, help="uncertain: candidates scored per kept triplet")
    sa.add_argument("--max-images", type=int, default=2000, help="uncertain: images embedded at most")
    sa.add_argument("--within-group", type=float, default=0.5,
                    help="stratified: share of triplets with both candidates from the anchor's group")
    sa.add_argument("--seed", type=int, default=0)
    sa.set_defaults(func=run_sample)

    fl = sub.add_parser("from-labels", help="proxy triplets from identity or attribute labels")
    fl.add_argument("--config", metavar="YAML", help="a configs/triplets/*.yaml file (flags override it)")
    fl.add_argument("--kind", choices=("identity", "attribute"), help="proxy-identity or proxy-attribute")
    fl.add_argument("--labels", action="append", metavar="CSV",
                    help="label file(s), relative to the dataset root or the current folder (repeatable; "
                         "attribute triplets are drawn within each file)")
    fl.add_argument("--attributes", help="attribute triplets: among gender,race,age (default: all the file has)")
    fl.add_argument("--identity-column", help="identity column (identity triplets; attribute triplets: keep "
                                              "a and b other people than the anchor)")
    fl.add_argument("--negative-same", help="identity triplets: attributes b's person shares with the anchor")
    fl.add_argument("--n", type=int, help="number of triplets")
    fl.add_argument("--seed", type=int)
    fl.add_argument("--min-age-gap", type=int, help="age bands apart for ages to count as different (default 1)")
    fl.add_argument("--split", metavar="FRACTIONS",
                    help="give images (people) to train,val,test first, e.g. 0.8,0.1,0.1; adds a split column")
    fl.add_argument("--root", help="dataset root (default: config root, else $PERFACE_DATA)")
    fl.add_argument("--out", help="triplets file to write (default: the config's out)")
    fl.set_defaults(func=run_from_labels)

    lc = sub.add_parser("labeling-config", help="print the Label Studio labeling config of the triplet task")
    lc.add_argument("--out", help="write it to this file instead of printing")
    lc.set_defaults(func=run_labeling_config)

    p.set_defaults(func=run, _triplets_parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    args._triplets_parser.print_help(sys.stderr)
    return 2


def _usage(message: str) -> int:
    print(f"perface: {message}", file=sys.stderr)
    return 2


# ----------------------------------------------------------------------------------------------- stats
def _repetition(frame) -> dict:
    import numpy as np
    import pandas as pd

    counts = pd.concat([frame["anchor"], frame["a"], frame["b"]]).value_counts()
    if not len(counts):
        return {"images": 0}
    values = counts.to_numpy()
    return {"images": int(len(counts)), "appearances_min": int(values.min()),
            "appearances_median": float(np.median(values)), "appearances_mean": float(values.mean()),
            "appearances_max": int(values.max()), "images_once": int((values == 1).sum()),
            "as_anchor": int(frame["anchor"].nunique()), "most_repeated": counts.head(5).to_dict()}


def stats(path: str) -> dict:
    """The numbers ``perface triplets stats`` prints, as a dict."""
    import numpy as np

    from perface.annotations.aggregate import aggregate, agreement, annotator_quality
    from perface.annotations.schema import is_judgments_table, read_table, validate_judgments, validate_triplets

    frame, kind = read_table(path)
    if is_judgments_table(frame.columns):
        j = validate_judgments(frame, path, kind)
        quality = annotator_quality(j)
        tri = aggregate(j)
        out = {"file": str(path), "kind": "judgments", "judgments": int(len(j)),
               "annotators": int(j["annotator_id"].nunique()), "triplets": int(len(tri)),
               "agreement": agreement(j), "judgments_per_triplet": _describe((tri["n_a"] + tri["n_b"]).to_numpy()),
               "images": _repetition(j)}
        if "is_gold" in j.columns:
            out["gold_judgments"] = int(j["is_gold"].sum())
        for col in ("source", "split"):
            if col in j.columns:
                out[f"by_{col}"] = {k or "(empty)": int(v) for k, v in j[col].value_counts().items()}
        out["per_annotator"] = quality.sort_values("n_judgments", ascending=False, kind="stable").to_dict("records")
        return out
    t = validate_triplets(frame, path, kind)
    p = t["p_a"].to_numpy(dtype=float)
    out = {"file": str(path), "kind": "triplets", "triplets": int(len(t)),
           "p_a": {"mean": float(np.mean(p)) if len(p) else float("nan"),
                   "unanimous_share": float(np.mean((p == 0) | (p == 1))) if len(p) else float("nan"),
                   "histogram": _histogram(p)},
           "images": _repetition(t)}
    if "n_a" in t.columns and t["n_a"].notna().any():
        votes = (t["n_a"] + t["n_b"]).dropna().to_numpy(dtype=float)
        out["votes_per_triplet"] = _describe(votes)
    for col in ("source", "stratum", "split"):
        if col in t.columns:
            out[f"by_{col}"] = {k or "(empty)": int(v) for k, v in t[col].value_counts().sort_index().items()}
    return out


def _describe(values) -> dict:
    import numpy as np

    values = np.asarray(values, dtype=float)
    if not len(values):
        return {"n": 0}
    return {"n": int(len(values)), "min": float(values.min()), "median": float(np.median(values)),
            "mean": float(values.mean()), "max": float(values.max())}


def _histogram(p) -> dict:
    import numpy as np

    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    counts, _ = np.histogram(p, bins=edges)
    return {f"{lo:.1f}-{hi:.1f}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def run_stats(args: argparse.Namespace) -> int:
    info = stats(args.file)
    if args.json:
        print(json.dumps(info, indent=2, default=_json_default))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width), highlight=False, soft_wrap=True)
    print(f"{info['file']}: {info['kind']}")
    if info["kind"] == "judgments":
        ag = info["agreement"]
        print(f"judgments {info['judgments']}  annotators {info['annotators']}  triplets {info['triplets']}  "
              f"with 2+ judgments {ag['n_multi']}")
        print(f"judgments per triplet: {_describe_line(info['judgments_per_triplet'])}")
        print(f"agreement: mean pairwise {_fmt(ag['mean_pairwise_agreement'])}  Krippendorff's alpha "
              f"{_fmt(ag['krippendorff_alpha'])}")
        if "gold_judgments" in info:
            print(f"gold judgments {info['gold_judgments']}")
    else:
        print(f"triplets {info['triplets']}  mean p_a {_fmt(info['p_a']['mean'])}  unanimous "
              f"{_fmt(info['p_a']['unanimous_share'])}")
        print("p_a histogram: " + "  ".join(f"{k}: {v}" for k, v in info["p_a"]["histogram"].items()))
        if "votes_per_triplet" in info:
            print(f"votes per triplet: {_describe_line(info['votes_per_triplet'])}")
    for key in ("by_source", "by_stratum", "by_split"):
        if key in info:
            print(f"{key.replace('by_', '')}: " + "  ".join(f"{k} {v}" for k, v in info[key].items()))
    im = info["images"]
    if im.get("images"):
        print(f"images {im['images']} (as anchor {im['as_anchor']}); appearances per image min "
              f"{im['appearances_min']} median {im['appearances_median']:g} mean {im['appearances_mean']:.2f} max "
              f"{im['appearances_max']}; {im['images_once']} appear once")
        print("most repeated: " + ", ".join(f"{p} ({c})" for p, c in im["most_repeated"].items()))
    if info["kind"] == "judgments":
        rows = info["per_annotator"] if args.top == 0 else info["per_annotator"][: args.top]
        table = Table(title=f"annotators ({len(rows)} of {len(info['per_annotator'])})", title_justify="left")
        for col in ("annotator_id", "n_judgments", "n_compared", "loo_agreement", "n_gold", "gold_accuracy"):
            table.add_column(col, justify="left" if col == "annotator_id" else "right")
        for r in rows:
            table.add_row(str(r["annotator_id"]), str(r["n_judgments"]), str(r["n_compared"]),
                          _fmt(float(r["loo_agreement"])), str(r["n_gold"]), _fmt(float(r["gold_accuracy"])))
        console.print(table)
    return 0


def _describe_line(d: dict) -> str:
    if not d.get("n"):
        return "none"
    return f"min {d['min']:g} median {d['median']:g} mean {d['mean']:.2f} max {d['max']:g}"


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ------------------------------------------------------------------------------------------- aggregate
def run_aggregate(args: argparse.Namespace) -> int:
    from perface.annotations.aggregate import aggregate, annotator_quality, filter_annotators
    from perface.annotations.schema import read_judgments, write_table, write_triplets

    for name in ("min_agreement", "min_gold_accuracy"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            return _usage(f"--{name.replace('_', '-')} must be between 0 and 1 (got {value:g})")
    j = read_judgments(args.file)
    quality = annotator_quality(j)
    kept, dropped = filter_annotators(j, min_agreement=args.min_agreement, min_gold_accuracy=args.min_gold_accuracy,
                                      min_compared=args.min_compared, quality=quality)
    tri = aggregate(kept)
    if not len(tri):
        print(f"perface: no judgments left in {args.file} after filtering; lower the thresholds", file=sys.stderr)
        return 1
    write_triplets(tri, args.out)
    print(f"judgments {len(j)}  kept {len(kept)}  triplets {len(tri)}  -> {args.out}")
    if len(dropped):
        print(f"dropped {len(dropped)} annotator(s):")
        for row in dropped.itertuples(index=False):
            print(f"  {row.annotator_id}: {row.reason}")
        write_table(dropped, Path(args.out).with_name(Path(args.out).stem + "_dropped_annotators.csv"))
    return 0


# ----------------------------------------------------------------------------------------------- split
def run_split(args: argparse.Namespace) -> int:
    from perface.annotations.labels import read_labels
    from perface.annotations.paths import data_root
    from perface.annotations.schema import read_triplets, write_triplets
    from perface.annotations.split import check_disjoint, parse_fractions, split_triplets

    try:
        fractions = parse_fractions(args.fractions)
    except ValueError as exc:
        return _usage(str(exc))
    tri = read_triplets(args.file)
    identities = None
    if args.identities:
        root = data_root(args.root)
        labels = read_labels(_find(args.identities, root), root)
        if args.identity_column not in labels.columns:
            return _usage(f"{args.identities} has no '{args.identity_column}' column (columns: "
                          f"{', '.join(labels.columns)}); pass --identity-column")
        identities = dict(zip(labels["path"], labels[args.identity_column]))
        images = set(tri["anchor"]) | set(tri["a"]) | set(tri["b"])
        if not images & set(identities):
            print(f"perface: no image of {args.file} is listed in {args.identities} (paths must match relative to "
                  f"the dataset root {root}; e.g. {next(iter(sorted(images)))} vs "
                  f"{next(iter(identities), '?')})", file=sys.stderr)
            return 1
    result = split_triplets(tri, fractions, seed=args.seed, identities=identities)
    leaks = check_disjoint(result.triplets, identities)
    if leaks:  # cannot happen; a guard against regressions
        print(f"perface: internal error, split not disjoint: {leaks[0]}", file=sys.stderr)
        return 1
    write_triplets(result.triplets, args.out)
    if args.dropped:
        write_triplets(result.dropped, args.dropped)
    c = result.counts
    print(f"train {c['train']}  val {c['val']}  test {c['test']}  dropped {c['dropped']} of {c['total']} "
          f"(to keep splits disjoint by image{' and identity' if identities else ''})")
    print("images: " + "  ".join(f"{k} {v}" for k, v in c["images"].items()))
    if identities:
        print("identities: " + "  ".join(f"{k} {v}" for k, v in c["identities"].items())
              + f"  (images without identity: {c['images_without_identity']})")
    print(f"wrote {args.out}")
    return 0


def _find(path: str, root: Path) -> Path:
    """A label file as given (relative to the current folder) or, failing that, relative to the root."""
    p = Path(os.path.expandvars(path)).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return root / p if (root / p).exists() else p


# ---------------------------------------------------------------------------------------------- sample
def run_sample(args: argparse.Namespace) -> int:
    from perface.annotations.labels import read_labels
    from perface.annotations.paths import DATA_ENV_VAR, data_root
    from perface.annotations.sample import list_images, sample_triplets, to_label_studio_tasks
    from perface.annotations.schema import write_table

    images_dir = Path(args.images).resolve()
    if not images_dir.is_dir():
        return _usage(f"--images {args.images} is not a folder")
    if args.root:
        root = data_root(args.root)
    elif os.environ.get(DATA_ENV_VAR) and images_dir.is_relative_to(data_root()):
        root = data_root()
    else:
        root = images_dir
    if not images_dir.is_relative_to(root):
        return _usage(f"--images {images_dir} is not inside --root {root}")
    images = list_images(images_dir, root)
    labels = None
    if args.labels:
        labels = read_labels(_find(args.labels, root), root)
        for alias, name in (("age_group", "age"), ("ethnicity", "race"), ("sex", "gender")):
            if name not in labels.columns and alias in labels.columns:
                labels = labels.rename(columns={alias: name})
    model = None
    if args.strategy == "uncertain":
        if not args.model:
            return _usage("the uncertain strategy needs --model (e.g. --model base)")
        model = _load_model(args.model)
        if model is None:
            return 1
    attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    try:
        tri = sample_triplets(images, args.n, args.strategy, seed=args.seed, labels=labels, attributes=attributes,
                              model=model, root=root, pool_factor=args.pool_factor, max_images=args.max_images,
                              within_group=args.within_group)
    except ValueError as exc:
        return _usage(str(exc))
    write_table(tri, args.out)
    print(f"sampled {len(tri)} triplets ({args.strategy}) from {len(images)} images; paths relative to {root}")
    print(f"wrote {args.out}")
    if args.label_studio:
        tasks = to_label_studio_tasks(tri, args.url_prefix)
        Path(args.label_studio).parent.mkdir(parents=True, exist_ok=True)
        Path(args.label_studio).write_text(json.dumps(tasks, indent=1) + "\n")
        print(f"wrote {args.label_studio} ({len(tasks)} Label Studio tasks; labeling config: "
              "perface triplets labeling-config)")
    return 0


def _load_model(name: str):
    try:
        import perface

        return perface.load(name)
    except (ImportError, AttributeError) as exc:
        print(f"perface: cannot load model {name!r}: perface.load is not available in this build ({exc})",
              file=sys.stderr)
        return None


# ----------------------------------------------------------------------------------------- from-labels
_ALIASES = {"age": ("age", "age_group"), "race": ("race", "ethnicity"), "gender": ("gender", "sex")}


def _load_config(path: str) -> dict:
    import yaml

    from perface.errors import AnnotationError

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file", path) from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise AnnotationError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(config, dict):
        raise AnnotationError(f"{path}:1: expected a mapping of settings (kind, n, sources, ...)")
    known = {"kind", "n", "seed", "root", "out", "split", "min_age_gap", "sources", "labels", "attributes",
             "identity_column", "negative_same", "columns", "description"}
    unknown = set(config) - known
    if unknown:
        raise AnnotationError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))} (known: "
                              f"{', '.join(sorted(known))})")
    return config


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def run_from_labels(args: argparse.Namespace) -> int:
    from perface.annotations.labels import read_labels
    from perface.annotations.paths import data_root
    from perface.annotations.proxy import ATTRIBUTES, AttributeSource, attribute_triplets, identity_triplets
    from perface.annotations.schema import write_triplets
    from perface.annotations.split import check_disjoint, parse_fractions

    config = _load_config(args.config) if args.config else {}
    kind = args.kind or config.get("kind")
    if kind not in ("identity", "attribute"):
        return _usage("give --kind identity|attribute (or 'kind:' in --config)")
    root = data_root(args.root or config.get("root") or None)
    out = args.out or config.get("out")
    if not out:
        return _usage("give --out FILE (or 'out:' in --config)")
    n = args.n if args.n is not None else int(config.get("n", 1000))
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    if n < 1:
        return _usage(f"--n must be at least 1 (got {n})")
    split = args.split or config.get("split")
    fractions = None
    if split:
        try:
            fractions = parse_fractions(split if isinstance(split, str) else list(split))
        except ValueError as exc:
            return _usage(str(exc))
    identity_column = args.identity_column or config.get("identity_column")
    if args.labels:
        sources = [{"labels": p} for p in args.labels]
    elif config.get("sources"):
        sources = list(config["sources"])
    elif config.get("labels"):
        sources = [{"labels": config["labels"]}]
    else:
        return _usage("give --labels CSV (or 'sources:' / 'labels:' in --config)")
    loaded = []
    for i, src in enumerate(sources):
        if not isinstance(src, dict) or "labels" not in src:
            return _usage(f"source {i + 1} in {args.config} needs a 'labels:' file")
        frame = read_labels(_find(str(src["labels"]), root), root)
        columns = dict(config.get("columns") or {})
        columns.update(src.get("columns") or {})
        for name, candidates in _ALIASES.items():
            if name in columns:
                continue
            found = next((c for c in candidates if c in frame.columns), None)
            if found:
                columns[name] = found
        for name, col in columns.items():
            if col not in frame.columns:
                return _usage(f"{src['labels']} has no column {col!r} for {name} (columns: "
                              f"{', '.join(frame.columns)})")
            if col != name:
                frame[name] = frame[col]
        loaded.append((src, frame))

    if kind == "identity":
        column = identity_column or "identity"
        if len(loaded) != 1:
            return _usage("identity triplets take exactly one label file")
        src, frame = loaded[0]
        if column not in frame.columns:
            return _usage(f"{src['labels']} has no '{column}' column (pass --identity-column)")
        negative_same = tuple(_as_list(args.negative_same or config.get("negative_same")))
        tri, report = identity_triplets(frame, n, seed=seed, identity_column=column, negative_same=negative_same,
                                        root=root, fractions=fractions)
    else:
        global_attrs = _as_list(args.attributes) if args.attributes else _as_list(config.get("attributes"))
        attr_sources = []
        for src, frame in loaded:
            wanted = _as_list(src.get("attributes")) if not args.attributes and src.get("attributes") else global_attrs
            if not wanted:
                wanted = [a for a in ATTRIBUTES if a in frame.columns]
            missing = [a for a in wanted if a not in frame.columns]
            if missing:
                return _usage(f"{src['labels']} has no {', '.join(missing)} label (columns: "
                              f"{', '.join(frame.columns)})")
            name = src.get("name") or Path(str(src["labels"])).parent.name or str(src["labels"])
            source_id = src.get("identity_column") or identity_column
            if source_id and source_id not in frame.columns:
                return _usage(f"{src['labels']} has no '{source_id}' column (identity_column)")
            attr_sources.append(AttributeSource(name=name, labels=frame, attributes=tuple(wanted),
                                                identity_column=source_id,
                                                n=src.get("n") if not args.n else None))
        min_gap = args.min_age_gap if args.min_age_gap is not None else int(config.get("min_age_gap", 1))
        try:
            tri, report = attribute_triplets(attr_sources, n, seed=seed, min_age_gap=min_gap, root=root,
                                             fractions=fractions)
        except ValueError as exc:
            return _usage(str(exc))
    if not len(tri):
        print("perface: the labels yield no triplet (too few labelled images per group?)", file=sys.stderr)
        return 1
    by_person = True if kind == "identity" else any(s.identity_column for s in attr_sources)
    if fractions is not None:
        identities = {}
        for src, frame in loaded:
            column = src.get("identity_column") or identity_column or ("identity" if kind == "identity" else None)
            if column and column in frame.columns:
                identities.update(zip(frame["path"], frame[column]))
        leaks = check_disjoint(tri, identities or None)
        if leaks:  # a guard against regressions
            print(f"perface: internal error, split not disjoint: {leaks[0]}", file=sys.stderr)
            return 1
    write_triplets(tri, out)
    r = report.as_dict()
    print(f"made {r['made']} of {r['requested']} proxy-{kind} triplets from {r['images_used']} images "
          f"(seed {seed}); paths relative to {root}")
    print("per source: " + "  ".join(f"{k} {v}" for k, v in r["per_source"].items()))
    print("per stratum: " + "  ".join(f"{k} {v}" for k, v in r["per_stratum"].items()))
    if r.get("per_split"):
        print("per split: " + "  ".join(f"{k} {v}" for k, v in r["per_split"].items())
              + "  (disjoint by image" + (" and identity" if by_person else "") + ", 0 dropped)")
    if r["skipped"]:
        print("label rows skipped: " + "  ".join(f"{k} {v}" for k, v in r["skipped"].items()))
    print(f"wrote {out}")
    return 0


# ------------------------------------------------------------------------------------- labeling-config
def run_labeling_config(args: argparse.Namespace) -> int:
    from perface.annotations.labeling_config import labeling_config

    xml = labeling_config()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(xml)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(xml)
    return 0
