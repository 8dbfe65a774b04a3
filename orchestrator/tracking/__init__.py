"""MLflow: the one writer of runs, metrics, images and models (``tracker``) and the MLflow model
URIs that algorithms take as parameters (``model_uris``).

May import: the foundation modules, ``storage`` and its own modules."""
