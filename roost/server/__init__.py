"""The HTTP server: one FastAPI app, one router module per surface."""
