"""The YAML specs users write and their validation: sweeps (``sweep``, which also holds the
catalog spec and the path rules they share) and trainings (``train``).

May import: the foundation modules, ``storage`` and its own modules."""
