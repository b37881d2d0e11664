"""Runs: a prompt executed against a model, recorded with its output, measurements and ratings.

A domain package (no HTTP): :mod:`server.runs.service` resolves what to run
(:mod:`server.runs.inputs`), renders it with :mod:`server.prompts`, checks the tenant's quota
(:mod:`server.runs.quota`), asks the semantic cache, calls the provider the registry picks, and
records the run (:mod:`server.runs.recording`). Errors are :class:`server.runs.errors.RunError`
subclasses or :class:`server.llm.base.ProviderError`; the API maps both in one place.
"""
