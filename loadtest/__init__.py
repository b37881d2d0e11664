"""Load generator and benchmark runner for the Prompt Studio collaboration server.

``python -m loadtest`` opens many websocket clients (Yjs over the y-websocket protocol, or the
JSON op protocol) across many rooms, measures how long every edit takes to reach every other
client of its room, and reports latency percentiles, delivered/expected counts, errors,
connection times and the server's CPU and memory. ``python -m loadtest bench`` runs the same
scenarios against this server and the reference servers. See ``loadtest/README.md``.

Every target is on the loopback interface and every loop is bounded in count and time.
"""
