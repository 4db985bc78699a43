"""``perface embed PATH... --out FILE.parquet``: embeddings of every face in files and folders.

Bad files never abort the run: each gets a row with ``status`` (``ok``, ``no_face``, ``error``) and ``error``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from perface.cli.options import add_batch_options, add_face_options, add_model_options, load_model, parse_face

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="embed the faces in images and folders into a Parquet file",
                       description="Embed faces (rows L2-normalised; cosine = dot product, higher = more similar). "
                                   "Folders are searched recursively for image files.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="output Parquet file")
    add_model_options(p)
    add_face_options(p, on_no_face_default="skip", allow_all=True)
    add_batch_options(p)
    p.set_defaults(func=run)


def collect_images(paths: list[str]) -> list[str]:
    """Files named on the command line (always kept, whatever their extension) and image files under folders,
    sorted per folder, duplicates removed."""
    out: list[str] = []
    seen: set[str] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found = [p]  # missing files become error rows, not a crash
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out


def write_parquet(results, out: Path, model) -> None:
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = model.embedding_dim
    table = pa.table({
        "path": pa.array([r.path for r in results], pa.string()),
        "face_index": pa.array([r.face_index for r in results], pa.int32()),
        "box": pa.array([list(r.box) if r.box is not None else None for r in results], pa.list_(pa.float32(), 4)),
        "embedding": pa.array([r.embedding.astype(np.float32) if r.embedding is not None else None for r in results],
                              pa.list_(pa.float32(), dim)),
        "status": pa.array([r.status for r in results], pa.string()),
        "error": pa.array([r.error for r in results], pa.string()),
    })
    meta = {b"perface.model": model.name.encode(), b"perface.preprocessing": model.preprocessing.to_json().encode(),
            b"perface.embedding_dim": str(dim).encode(), b"perface.similarity": b"cosine (dot product); higher = more similar"}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)


def run(args: argparse.Namespace) -> int:
    from perface.cli.main import UsageError

    out = Path(args.out)
    if out.suffix.lower() != ".parquet":
        raise UsageError(f"--out {args.out}: the output must be a .parquet file")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    face = parse_face(args.face, allow_all=True)
    images = collect_images(args.paths)
    if not images:
        raise UsageError(f"no image files found in {' '.join(args.paths)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    model = load_model(args)
    workers = (os.cpu_count() or 1) if args.workers is None else max(0, args.workers)
    workers = min(workers, len(images) // 8)  # a pool costs ~1 s to start: only worth it for bigger runs

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=args.no_progress, transient=True) as bar:
        task = bar.add_task("embed", total=len(images))
        results = model.embed_faces(images, face=face, on_no_face=args.on_no_face, batch_size=args.batch_size,
                                    workers=workers, progress=lambda n: bar.advance(task, n))
    write_parquet(results, out, model)
    ok = sum(r.status == "ok" for r in results)
    no_face = sum(r.status == "no_face" for r in results)
    failed = sum(r.status == "error" for r in results)
    import sys

    print(f"perface: {len(images)} images -> {ok} faces embedded, {no_face} without a face, {failed} failed; "
          f"wrote {out}", file=sys.stderr)
    return 0
