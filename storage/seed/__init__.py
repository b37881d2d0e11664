"""Seed content (templates and techniques) loaded by ``prompt-studio db seed``."""
