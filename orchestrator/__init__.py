"""Everything with side effects: images and files, the CLI, and (later) specs, Ray, MLflow, Parquet."""
