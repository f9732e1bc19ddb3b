"""Persistent storage of the ledger through SQLAlchemy 2 (SQLite default, PostgreSQL by URL)."""
