"""Where files live and how they are written: the storage interface (``location``: a ``Location``
on this machine's disk or in an object store, one backend per kind behind one protocol, the
working copy and the one cache root), its operations on locations held as text (``locations``),
atomic writes (``files``) and one lock per output folder (``lock``).

May import: the foundation modules (``errors``, ``limits``, ``provenance``, ``services``) and its
own modules."""
