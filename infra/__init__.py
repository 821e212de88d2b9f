"""Engines and settings: MLflow, Ray, Dask, storage, locks, retries and redaction."""
