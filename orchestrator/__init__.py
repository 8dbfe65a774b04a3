"""Everything with side effects, in the order of the flow: specs, jobs, Ray, MLflow, Parquet,
images and files, and the command line (``stylegrid.orchestrator``; docs/architecture.md has the
layers and what each module may import)."""
