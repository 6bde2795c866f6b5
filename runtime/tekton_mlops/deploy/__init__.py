"""Deployment targets: KServe InferenceServices and local V2 servers."""
