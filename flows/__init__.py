"""Prefect flows and the ``shoal`` command line: wiring only (see ``docs/architecture.md``)."""
