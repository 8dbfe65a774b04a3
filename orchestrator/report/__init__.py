"""What a person reads: the HTML report of a sweep (``html``) and every picture stylegrid draws
(``pictures``: loss curves, contact sheets, sample grids, the report's charts).

May import: the foundation modules, ``storage``, ``images``, ``results``, ``tracking`` and its own
modules; never a workflow."""
