"""The ``perface`` sub-commands: where each lives and its one-line help (the listing ``perface --help`` shows
without importing every command module, so ``perface score`` starts without loading pandas, Lightning, ...)."""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "score": Command("perface.cli.score", "similarity of the faces in two images (higher = more similar)"),
    "embed": Command("perface.cli.embed", "embed the faces in images and folders into a Parquet file"),
    "info": Command("perface.cli.info", "model, its preprocessing and face options, library versions, cache paths"),
    "ingest": Command("perface.cli.ingest",
                      "read annotation exports (generic, AVFS, Label Studio, MTurk) into canonical judgments"),
    "triplets": Command("perface.cli.triplets", "inspect, aggregate, split, sample and build triplet files"),
    "eval": Command("perface.cli.eval", "evaluate models: triplet agreement, attribute probes, face verification, "
                                        "face swaps, anonymisation, videos, distributions"),
    "export": Command("perface.cli.export", "export a model to ONNX (runs with onnxruntime, no torch)"),
    "gallery": Command("perface.cli.gallery", "build or describe a gallery of replacement identities (perface select)"),
    "select": Command("perface.cli.select", "choose replacement identities for anonymisation from a gallery"),
    "annotate": Command("perface.cli.annotate", "serve a judging page for human triplet judgments, report, export"),
}
