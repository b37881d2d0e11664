"""Shared test support: real services, fresh databases, real server processes."""
