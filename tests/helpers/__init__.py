"""Helpers shared by tests, imported as ``tests.helpers.<module>`` (pytest puts the repository root on
``sys.path``: ``pythonpath = ["."]`` in pyproject.toml)."""
