"""Human face-similarity annotations: canonical judgment/triplet files, readers of annotation-tool exports,
ingestion with rejects, vote aggregation and agreement, leak-free splits, sampling, and proxy triplets.

Typical use::

    from perface.annotations import ingest, aggregate, read_triplets, split_triplets
    result = ingest(["Batch_1_batch_results.csv"], "mturk", root="/data")   # result.judgments, result.rejects
    triplets = aggregate(result.judgments)                                   # anchor, a, b, n_a, n_b, p_a
    split = split_triplets(triplets, (0.8, 0.1, 0.1), seed=0)               # disjoint by image

See ``data/annotations/README.md`` for the formats.
"""

from __future__ import annotations

from perface.annotations.aggregate import aggregate, agreement, annotator_quality, filter_annotators
from perface.annotations.ingest import REJECT_REASONS, IngestResult, ingest, write_ingest
from perface.annotations.labeling_config import labeling_config
from perface.annotations.labels import AGE_BANDS, age_band, read_labels
from perface.annotations.proxy import AttributeSource, attribute_triplets, identity_triplets
from perface.annotations.readers import READERS
from perface.annotations.sample import sample_triplets, to_label_studio_tasks
from perface.annotations.schema import (read_judgments, read_triplets, validate_judgments, validate_triplets,
                                        write_judgments, write_triplets)
from perface.annotations.split import check_disjoint, split_triplets

__all__ = [
    "AGE_BANDS", "READERS", "REJECT_REASONS", "AttributeSource", "IngestResult", "age_band", "aggregate",
    "agreement", "annotator_quality", "attribute_triplets", "check_disjoint", "filter_annotators",
    "identity_triplets", "ingest", "labeling_config", "read_judgments", "read_labels", "read_triplets",
    "sample_triplets", "split_triplets", "to_label_studio_tasks", "validate_judgments", "validate_triplets",
    "write_ingest", "write_judgments", "write_triplets",
]
