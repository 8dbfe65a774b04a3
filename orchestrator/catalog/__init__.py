"""``stylegrid stylize-catalog``: the sources and the manifest (``manifest``), the Ray Data stages
(``pipeline``), the same stages on one machine (``local``) and the run (``driver``).

May import: the packages below the workflows and the foundation modules; never another workflow."""
