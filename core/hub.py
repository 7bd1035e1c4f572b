"""Deprecated location, kept for one release; import from :mod:`bertzoo.checkpoint.hub`.

``bertzoo.hub`` is the same module object as :mod:`bertzoo.checkpoint.hub` (not a copy of its
names), so code that monkeypatches an attribute here still changes what the functions see.
"""

import sys

from bertzoo.checkpoint import hub

sys.modules[__name__] = hub
