"""Tabular ML: data loading, estimators, ONNX export and metrics (needs the ``ml`` extra)."""
