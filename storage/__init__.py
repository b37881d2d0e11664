"""Persistence for Prompt Studio: SQLAlchemy 2 models, the async engine and sessions.

``storage`` knows nothing of the web layer; it stores text, JSON and bytes.
"""

from storage.base import Base, JSONType, utcnow
from storage.engine import create_engine, create_session_factory

__all__ = ["Base", "JSONType", "create_engine", "create_session_factory", "utcnow"]
