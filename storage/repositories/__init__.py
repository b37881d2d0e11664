"""Repositories: the queries of one area each, taking an ``AsyncSession`` and returning models."""
