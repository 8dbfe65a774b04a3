"""``python -m orchestrator ...``: the same commands as ``stylegrid`` (the ``ray job submit`` entrypoint)."""

import sys

from .cli import main

sys.exit(main())
