"""Kubeflow Pipelines v2 on Tekton: the KFP pipeline IR compiled to ``tekton.dev/v1``.

Two halves that share one vocabulary (the *plan* of a task, the workspace *store*):

- compile time (``ir``, ``graph``, ``compiler``, ``names``): the IR's DAG of components,
  sub-DAGs and control flow is flattened into one Tekton Pipeline whose tasks run
  ``tekton-mlops kfp launch ...``; ``tekton/`` admits the result before it is written.
- run time (``launcher``, ``resolve``, ``placeholders``, ``cel``, ``store``, ``values``):
  inside a step, what KFP's driver and launcher do on Argo: inputs resolved from the
  workspace, placeholders filled, the component run, outputs recorded for the next task.

The run-time half imports nothing of the compile-time half, so a step needs only the
runtime image (with the ``kfp`` extra for lightweight Python components).
"""
