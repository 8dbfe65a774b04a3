"""Where files live and how they are written: atomic writes (``files``), one lock per output
folder (``lock``), local paths and object-store URIs through pyarrow's file systems (``locations``).

May import: the foundation modules (``errors``, ``limits``, ``provenance``, ``services``) and its
own modules."""
