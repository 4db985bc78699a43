"""``perface select TARGET --gallery gallery.parquet``: replacement identities for a face to anonymise.

Candidates lie in the perceptual-similarity band (default: from the gallery's own similarity distribution, see
:mod:`perface.selection.band`), are not confused with the target by the identity model (identity similarity
below the re-identification threshold T), optionally share attributes with the target, and are ranked by
closeness to the band's centre. The target's own identity is never selected. ``--report`` runs many targets
and summarises the policy: the share of selections the identity model would confuse with their target (0 at
the threshold used), the distribution of selected similarities, and how often no candidate qualified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perface.cli.options import add_batch_options, add_face_options, face_overrides, pool_workers, progress_enabled


def add_parser(sub) -> None:
    p = sub.add_parser("select", help="choose replacement identities for anonymisation from a gallery",
                       description="Choose replacement identities for a target face from a gallery built with "
                                   "'perface gallery build': perceptually close (inside the band) but not the same "
                                   "person to the identity model (identity similarity < T); ranked by closeness to "
                                   "the band's centre. Similarities are cosines, higher = more similar.")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="image of the face to anonymise (with --report: any number of images or folders)")
    p.add_argument("--gallery", required=True, metavar="FILE.parquet", help="gallery from 'perface gallery build'")
    p.add_argument("--model", default=None, metavar="M",
                   help="perceptual model; default: the one the gallery was built with")
    p.add_argument("--identity-model", default=None, metavar="M",
                   help="identity model; default: the one the gallery was built with (base)")
    add_face_options(p)
    p.add_argument("--threads", type=int, default=None, metavar="N", help="compute threads (default: all cores)")
    p.add_argument("--band", metavar="LO:HI", help="perceptual-similarity band, e.g. 0.88:0.92 (default: the "
                                                   "gallery's, from its own similarity distribution)")
    p.add_argument("--max-identity-sim", type=float, default=None, metavar="T",
                   help="exclude identities whose identity similarity to the target is >= T (default: the identity "
                        "model's threshold at FAR 1e-3 on LFW pairs.txt, stored in the gallery)")
    p.add_argument("--same", default="", metavar="ATTR[,ATTR]", help="attributes candidates must share with the "
                                                                      "target, e.g. gender,age_group")
    p.add_argument("--top", type=int, default=10, metavar="K", help="candidates to return (default: 10)")
    p.add_argument("--labels", metavar="FILE", help="label file giving the targets' identities and attributes")
    p.add_argument("--target-identity", default=None, metavar="NAME",
                   help="the target's identity name (default: the label file's, else the image's folder name; "
                        "'' for unknown)")
    p.add_argument("--target-attr", action="append", default=[], metavar="KEY=VALUE",
                   help="a target attribute for --same (repeat), e.g. gender=female")
    p.add_argument("--index", choices=("auto", "exact", "faiss"), default="auto",
                   help="similarity search: exact numpy, a FAISS index, or auto (FAISS beyond 100,000 identities "
                        "when faiss-cpu is installed) (default: auto)")
    p.add_argument("--report", action="store_true", help="run every TARGET and print a summary of the selections")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_batch_options(p, cache=True)
    p.set_defaults(func=run)


def _parse_attrs(items: list[str]) -> dict[str, str]:
    from perface.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--target-attr {item!r}: expected KEY=VALUE, e.g. gender=female")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from perface.errors import SelectionError, UsageError
    from perface.io.files import collect_images
    from perface.loading import load
    from perface.progress import bars
    from perface.selection import (Gallery, embed_targets, parse_band, resolve_threshold, select_many,
                                   selection_report)
    from perface.selection.select import target_attributes

    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1")
    if args.max_identity_sim is not None and not -1.0 <= args.max_identity_sim <= 1.0:
        raise UsageError(f"--max-identity-sim {args.max_identity_sim:g}: a cosine similarity in [-1, 1]")
    try:
        band = parse_band(args.band) if args.band else None
    except SelectionError as exc:
        raise UsageError(f"--{exc}") from None
    attrs = _parse_attrs(args.target_attr)
    if not args.report and len(args.targets) != 1:
        raise UsageError(f"{len(args.targets)} targets given: select takes one TARGET (use --report for many)")
    for t in args.targets:
        if not Path(t).exists():
            raise FileNotFoundError(2, "target not found", t)
    if not args.report and Path(args.targets[0]).is_dir():
        raise UsageError(f"{args.targets[0]} is a folder: select takes one image (use --report for folders)")
    if args.labels and not Path(args.labels).is_file():
        raise FileNotFoundError(2, "label file not found", args.labels)
    images = collect_images(args.targets).files

    gallery = Gallery.load(args.gallery)
    same = [s.strip() for s in args.same.split(",") if s.strip()]
    unknown = [s for s in same if s not in gallery.attribute_names]
    if unknown:
        have = ", ".join(gallery.attribute_names) or "none (build it with --labels)"
        raise UsageError(f"--same {unknown[0]}: not an attribute of {args.gallery} (its attributes: {have})")
    options = {"threads": args.threads, **face_overrides(args)}
    model = load(args.model, **options) if args.model else None
    identity_model = load(args.identity_model, **options) if args.identity_model else None
    model, identity_model = gallery.load_models(model, identity_model, **options)
    threshold = resolve_threshold(gallery, args.max_identity_sim, identity_model)
    identity_kw = {} if args.target_identity is None else {"identity": args.target_identity or None}

    with bars(progress_enabled(args) if args.report else False) as factory:
        targets, failures = embed_targets(images, model, identity_model, labels=args.labels, attributes=attrs,
                                          batch_size=args.batch_size, workers=pool_workers(args, len(images)),
                                          cache=not args.no_cache, progress=factory, **identity_kw)
    if not args.report:
        if failures:
            f = failures[0]
            from perface.errors import NoFaceError

            if f["status"] == "no_face":
                raise NoFaceError(f"{f['path']}: no face found in the target ({f['error']})")
            raise SelectionError(f"{f['path']}: {f['error']}")
        (selection,) = select_many(targets, gallery, band=band, same=same, top=args.top, index=args.index,
                                   threshold=threshold)
        if args.json:
            print(json.dumps(selection.to_dict(), indent=2))
        else:
            _print_selection(selection)
        return 0

    if same:  # targets whose attributes are unknown cannot be matched: counted, not selected
        known = []
        for tg in targets:
            values = target_attributes(tg, gallery, same)
            missing = [a for a in same if not values[a]]
            if missing:
                failures.append({"path": tg.name, "status": "attribute_unknown",
                                 "error": f"{missing[0]} unknown (give it in --labels)"})
            else:
                known.append(tg)
        targets = known
    selections = select_many(targets, gallery, band=band, same=same, top=args.top, index=args.index,
                             threshold=threshold)
    report = selection_report(selections, gallery, failures, band=band or gallery.default_band, threshold=threshold,
                              same=same, top=args.top)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def _print_selection(sel) -> None:
    d = sel.to_dict()
    b = sel.band
    print(f"target    {d['target']} (identity: {d['target_identity'] or 'unknown'})")
    print(f"band      {b.lo:.4f}:{b.hi:.4f} centre {b.centre:.4f} ({b.source})")
    print(f"threshold {sel.threshold.describe()}: identity similarity >= T is excluded")
    if sel.same:
        print("same      " + ", ".join(f"{a}={sel.target_attributes.get(a)}" for a in sel.same))
    if sel.candidates:
        print(f"{'rank':>4}  {'identity':<32} {'perceptual':>10} {'identity':>10}  attributes")
        for c in sel.candidates:
            attrs = ", ".join(f"{k}={v}" for k, v in c.attributes.items())
            print(f"{c.rank:>4}  {c.identity:<32} {c.perceptual_similarity:>10.5f} "
                  f"{c.identity_similarity:>10.5f}  {attrs}")
    else:
        print("no candidate qualified")
    ex = ", ".join(f"{k} {v}" for k, v in sel.excluded.items())
    print(f"gallery   {sel.gallery_size} identities: {sel.qualified} qualified; excluded: {ex}")


def _print_report(r: dict) -> None:
    b = r["band"] or {}
    t = r["threshold"] or {}
    sp = r["selected_perceptual_similarity"]
    si = r["selected_identity_similarity"]
    conf = r["confusion"]
    nc = r["no_candidate"]
    left_out = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(r["unusable"]["by_status"].items()))
    print(f"targets                 {r['n_targets']} ({r['n_usable']} used"
          + (f"; left out: {left_out})" if left_out else ")"))
    band = f"{b['lo']:.4f}:{b['hi']:.4f}" if b else "none"
    print(f"gallery                 {r['gallery_size']} identities; band {band}; T {t.get('value', float('nan')):.5f}; "
          f"top {r['top']}"
          + (f"; same {','.join(r['same'])}" if r["same"] else ""))
    print(f"selections              {r['n_selections']}")
    print(f"confused with target    {conf['confused']} ({conf['share']:.2%}) at identity similarity >= T")
    print(f"own identity selected   {r['own_identity_selected']}")
    rate = nc["rate"]
    print(f"no candidate            {nc['count']} targets ({rate:.2%})" if rate is not None
          else "no candidate            -")
    if sp.get("n"):
        print(f"selected perceptual sim mean {sp['mean']:.4f}, median {sp['median']:.4f}, p05 {sp['p05']:.4f}, "
              f"p95 {sp['p95']:.4f}, min {sp['min']:.4f}, max {sp['max']:.4f}")
        print(f"selected identity sim   mean {si['mean']:.4f}, median {si['median']:.4f}, max {si['max']:.4f}")
    print("excluded (all targets)  " + ", ".join(f"{k} {v}" for k, v in r["excluded"].items()))
