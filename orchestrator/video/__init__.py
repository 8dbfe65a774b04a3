"""``stylegrid stylize-video``: clips in and out (``clips``), segments and their join
(``segments``) and the run (``driver``).

May import: the packages below the workflows and the foundation modules; never another workflow."""
