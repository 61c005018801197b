"""Market data: price loaders (and, later, fetchers and forecasters)."""
