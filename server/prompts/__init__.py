"""Prompts and their versions: variables, rendering, diffs, labels, export/import.

A domain package: it knows nothing of HTTP. A router in :mod:`server.api.prompts` parses a
request, calls one function of :mod:`server.prompts.service` (or ``exchange``, ``publishing``)
and shapes the answer; :class:`~server.prompts.errors.PromptError` subclasses carry the error
code and field the API shows.
"""
