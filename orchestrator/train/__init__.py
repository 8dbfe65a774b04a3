"""``stylegrid train-*``: the Ray Train driver (``driver``), what differs per network
(``recipes``), its data (``data``), the held-out part of a corpus (``held_out``) and checkpoints
(``checkpoints``).

May import: the packages below the workflows and the foundation modules; never another workflow."""
