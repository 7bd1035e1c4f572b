"""``python -m bertzoo.cli``: the ``bertzoo`` command."""

import sys

from bertzoo.cli import main

sys.exit(main())
