"""Alembic migrations for Prompt Studio: ``env.py``, the versions, and :mod:`migrations.runner`.

No ``alembic.ini`` is needed: :func:`migrations.runner.make_config` builds the configuration.
"""
