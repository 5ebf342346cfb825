"""``python -m app.cli``: the ``drwatch`` command."""

import sys

from app.cli import main

sys.exit(main())
