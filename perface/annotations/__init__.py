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

from perface.annotations.aggregate import (AggregateRun, aggregate, aggregate_file, agreement, annotator_quality,
                                           filter_annotators)
from perface.annotations.ingest import REJECT_REASONS, IngestResult, IngestRun, ingest, ingest_folder, write_ingest
from perface.annotations.labeling_config import labeling_config
from perface.annotations.labels import AGE_BANDS, age_band, labels_frame
from perface.annotations.proxy import AttributeSource, attribute_triplets, identity_triplets
from perface.annotations.proxy_config import ProxyConfig, ProxyRun, build_proxy_triplets, write_proxy_triplets
from perface.annotations.readers import READERS
from perface.annotations.sample import SampleRun, sample_file, sample_triplets, to_label_studio_tasks
from perface.annotations.schema import (read_judgments, read_triplets, validate_judgments, validate_triplets,
                                        write_judgments, write_triplets)
from perface.annotations.split import SplitRun, check_disjoint, split_file, split_triplets
from perface.annotations.stats import file_stats, format_stats

__all__ = [
    "AGE_BANDS", "READERS", "REJECT_REASONS", "AggregateRun", "AttributeSource", "IngestResult", "IngestRun",
    "ProxyConfig", "ProxyRun", "SampleRun", "SplitRun", "age_band", "aggregate", "aggregate_file", "agreement",
    "annotator_quality", "attribute_triplets", "build_proxy_triplets", "check_disjoint", "file_stats",
    "filter_annotators", "format_stats", "identity_triplets", "ingest", "ingest_folder", "labeling_config",
    "labels_frame", "read_judgments", "read_triplets", "sample_file", "sample_triplets", "split_file",
    "split_triplets", "to_label_studio_tasks", "validate_judgments", "validate_triplets", "write_ingest",
    "write_judgments", "write_proxy_triplets", "write_triplets",
]
