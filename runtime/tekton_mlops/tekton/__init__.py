"""The project's model of Tekton's API: what Tekton accepts, and how it substitutes.

Everything that reads or runs Tekton YAML (the catalog linter, the local executor,
the Triggers listener, the KFP compiler) asks this package, so Tekton's rules live
in one place:

- ``schema``: strict decoding against Tekton's API definitions (unknown fields, types);
- ``admission``: what the validating webhook refuses, with its messages
  (``task_rules``, ``pipeline_rules``, ``problems``);
- ``variables``: the ``$(…)`` grammar and the one substitution engine;
- ``flags``, ``defaults``, ``durations``: feature flags, defaults Tekton fills in, Go durations;
- ``resources``: typed views of the documents.

It imports nothing from ``local``, ``catalog``, ``triggers`` or ``kfp``.
"""
