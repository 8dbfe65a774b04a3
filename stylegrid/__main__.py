"""``python -m stylegrid ...``: the same commands as ``stylegrid`` (the ``ray job submit`` entrypoint)."""

import sys

from stylegrid.orchestrator.cli.main import main

sys.exit(main())
