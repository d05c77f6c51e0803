"""The storage ports on SQLAlchemy (SQLite or PostgreSQL): the only package with session work."""

from settlement.sql.unit_of_work import SqlUnitOfWork

__all__ = ["SqlUnitOfWork"]
