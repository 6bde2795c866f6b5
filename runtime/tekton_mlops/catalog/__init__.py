"""Catalog tooling: lint the Tasks and Pipelines, generate their READMEs."""
