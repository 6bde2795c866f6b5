"""Run tekton.dev/v1 TaskRuns and PipelineRuns on one machine, with Tekton's semantics."""
