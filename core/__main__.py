"""``python -m bertzoo`` (and ``torchrun -m bertzoo train ...``): the ``bertzoo`` command."""

import sys

from bertzoo.cli import main

sys.exit(main())
