"""The browser bundle: served by the server, and what its sources build."""
