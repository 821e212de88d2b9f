"""Persistence: dataset declarations, the input contract, readers and synthetic worlds."""
