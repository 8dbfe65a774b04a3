"""``stylegrid sweep``: a spec expanded into jobs (``jobs``, ``plan``, ``region_jobs``, ``regions``),
scheduled on Ray actors (``driver``, ``worker``), stopped early by successive halving
(``halving``), written by one sink (``sink``) and mirrored to an object store (``mirror``).

May import: the packages below the workflows (``storage``, ``specs``, ``tracking``, ``results``,
``report``) and the foundation modules; never another workflow."""
