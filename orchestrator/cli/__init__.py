"""The ``stylegrid`` command line: the entry point and error policy (``main``), the grammar
(``parser``), ``run`` and ``algorithms`` (``run``) and the workflows' subcommands (``workflows``).

May import: every other part of the orchestrator (it is the top layer); each subcommand imports
the workflow it runs only when it runs."""
