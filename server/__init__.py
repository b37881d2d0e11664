"""Prompt Studio server: the Starlette app, the websocket hub, REST routers and the CLI.

This package is the composition root: it is the only place that reads the environment.
"""
