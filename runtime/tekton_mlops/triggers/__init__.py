"""Tekton Triggers locally: EventListeners, interceptors, bindings and templates."""
