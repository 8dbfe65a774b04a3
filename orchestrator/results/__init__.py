"""The Parquet rows of a sweep: their schema, the part files and ``results.parquet``, which jobs
are current, early stopping's rung records (``rows``).

May import: the foundation modules, ``storage`` and its own modules."""
