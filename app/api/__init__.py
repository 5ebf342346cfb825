"""HTTP API routers. Every endpoint reads the in-memory snapshot; none does I/O to a dependency."""
