"""Evaluation: is a model better than the base model, on which judgments, and did it keep identity?

One concept per module (none imports torch at import time):

* :mod:`~perface.evaluation.agreement`: 2AFC agreement with triplet judgments (soft ``p_a``, ties 0.5),
  bootstrap 95% CIs, per-stratum results, paired-bootstrap differences between two models.
* :mod:`~perface.evaluation.verification`: LFW ``pairs.txt`` / CSV pairs, 10-fold accuracy, ROC AUC,
  TAR at FAR, EER, :func:`~perface.evaluation.verification.threshold_at_far`.
* :mod:`~perface.evaluation.attributes`: linear probes (logistic / ridge) for label columns.
* :mod:`~perface.evaluation.embedding_cache`: embeddings cached per (model weights, image content,
  preprocessing, face options).
* :mod:`~perface.evaluation.evaluate`: runs models over evaluation files, reporting unusable images.
* :mod:`~perface.evaluation.report`: ``report.md``, ``metrics.json`` and PNG plots (headless matplotlib).

The command line is ``perface eval agreement|attributes|verification`` (:mod:`perface.cli.eval`).
"""
