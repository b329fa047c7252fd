"""``python -m streams.cli``: the ``tagger`` command."""

import sys

from streams.cli import main

sys.exit(main())
