"""The state store: SQLAlchemy async Core over SQLite (default) or PostgreSQL."""
