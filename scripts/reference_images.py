"""List LFW images of people named in none of its protocol pairs files, as training reference images.

    python scripts/reference_images.py --lfw $PERFACE_DATA/lfw --out data/reference/lfw_outside_protocols.txt

Reference images (``data.reference_images``) are unlabelled photos whose embeddings training holds at the base
model's (``model.reference_weight``). LFW's photos are of the kind identity is verified on, but LFW is also the
verification test (``pairs.txt``) and the sweep's selection set (``pairsDevTrain.txt`` / ``pairsDevTest.txt``):
only people in none of those files may be used, so no person the model is measured on was seen in training.
Paths are written relative to the data root (``lfw/images/NAME/NAME_NNNN.jpg``), sorted, after ``#`` lines
that say how the list was made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTOCOLS = ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt")


def outside_protocols(lfw: Path, protocols=PROTOCOLS) -> list[str]:
    """Paths (relative to ``lfw/images``) of every image of a person named in none of ``protocols``."""
    from perface.evaluation.verification import read_lfw_pairs

    named = set()
    for name in protocols:
        frame = read_lfw_pairs(lfw / name).frame
        named |= {p.split("/")[0] for col in ("a", "b") for p in frame[col]}
    images = lfw / "images"
    return sorted(f"{d.name}/{f.name}" for d in images.iterdir() if d.is_dir() and d.name not in named
                  for f in d.glob("*.jpg"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, required=True, help="the LFW folder (images/, pairs.txt, pairsDev*.txt)")
    ap.add_argument("--out", type=Path, required=True, help="list to write")
    args = ap.parse_args(argv)
    missing = [n for n in ("images", *PROTOCOLS) if not (args.lfw / n).exists()]
    if missing:
        print(f"reference_images.py: {args.lfw}: no {', '.join(missing)}; give --lfw the LFW folder of the shared "
              "data ($PERFACE_DATA/lfw)", file=sys.stderr)
        return 2
    paths = outside_protocols(args.lfw)
    people = len({p.split("/")[0] for p in paths})
    header = [f"# LFW images of the {people} people named in none of {', '.join(PROTOCOLS)} ({len(paths)} images):",
              "# unlabelled reference images for training (data.reference_images); written by",
              "#   python scripts/reference_images.py --lfw $PERFACE_DATA/lfw --out " + str(args.out)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(header + [f"lfw/images/{p}" for p in paths]) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"{args.out}: {len(paths)} images of {people} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
