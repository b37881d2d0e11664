"""The declarative base shared by every model, and the column helpers they use.

* :class:`Base` carries a naming convention, so every constraint and index gets the same,
  predictable name on PostgreSQL and SQLite (migrations and error mapping rely on it).
* :data:`JSONType` is ``JSONB`` on PostgreSQL and ``JSON`` on SQLite: one model, both dialects.
* :func:`utcnow` gives naive UTC datetimes: the schema's columns are ``TIMESTAMP`` without
  time zone, and both dialects store such values unchanged.
* Python-side column defaults are applied when an object is constructed (not only at flush),
  so a new ``Prompt()`` already has its UUID, timestamps and empty JSON lists.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import JSON, TIMESTAMP, Index, MetaData, Text, inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault, SchemaItem

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSONB on PostgreSQL (indexable with GIN), JSON (text) on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# Key in ``Index.info`` naming the only dialect an index exists on (see :func:`postgresql_only`).
ONLY_DIALECT_KEY: Final = "only_dialect"


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (the schema stores TIMESTAMP without zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_uuid() -> str:
    """A random UUID in its canonical text form (the schema's TEXT primary keys)."""
    return str(uuid.uuid4())


def postgresql_only(index: Index) -> Index:
    """Mark ``index`` as existing on PostgreSQL only (e.g. a GIN index on a JSONB column).

    ``create_all`` skips it on other dialects, and :func:`exists_on_dialect` tells the
    migration tooling to do the same when comparing the database with the models.
    """
    index.info[ONLY_DIALECT_KEY] = "postgresql"
    index.ddl_if(dialect="postgresql")
    return index


def exists_on_dialect(item: SchemaItem, dialect_name: str) -> bool:
    """Whether a schema item is meant to exist in a database of the given dialect."""
    only = item.info.get(ONLY_DIALECT_KEY) if hasattr(item, "info") else None
    return only is None or only == dialect_name


def _python_default(column_default: object) -> tuple[bool, Any]:
    """The value of a Python-side column default, if it can be computed without a database."""
    if isinstance(column_default, ScalarElementColumnDefault):
        return True, column_default.arg
    if isinstance(column_default, CallableColumnDefault):
        # SQLAlchemy wraps zero-argument callables so that they take the execution context.
        return True, column_default.arg(None)  # type: ignore[arg-type]
    return False, None


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of every Prompt Studio table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy, never mutated
        str: Text(),
        datetime: TIMESTAMP(),
    }

    def __init__(self, **kwargs: Any) -> None:
        """Set the given attributes, then fill every other column from its Python default."""
        cls = type(self)
        for key, value in kwargs.items():
            if not hasattr(cls, key):
                raise TypeError(f"{key!r} is an invalid keyword argument for {cls.__name__}")
            setattr(self, key, value)
        for attr in inspect(cls).column_attrs:
            if attr.key in kwargs:
                continue
            known, value = _python_default(attr.columns[0].default)
            if known:
                setattr(self, attr.key, value)

    def __repr__(self) -> str:
        mapper = inspect(type(self))
        names = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
        keys = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in names)
        return f"{type(self).__name__}({keys})"
