"""One Prefect task per pipeline stage: I/O through the catalog, tracking through infra."""
