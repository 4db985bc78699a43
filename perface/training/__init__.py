"""Fine-tuning with triplet loss (PyTorch Lightning). Importing this package imports Lightning; the
inference path (perface.load, the CLI's score/embed) never does."""
