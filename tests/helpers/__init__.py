"""Helpers shared by tests (importable as ``helpers`` once ``tests/`` is on ``sys.path``)."""
