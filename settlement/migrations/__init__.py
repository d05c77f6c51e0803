"""Alembic migrations of the settlement database (run through ``settlement.db``, never at import time)."""
