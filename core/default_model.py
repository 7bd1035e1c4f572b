"""Deprecated location, kept for one release; import from :mod:`bertzoo.checkpoint.default_model`.

``bertzoo.default_model`` is the same module object as :mod:`bertzoo.checkpoint.default_model` (not
a copy of its names), so monkeypatching ``DEFAULT_PACKAGE`` here still changes the search.
"""

import sys

from bertzoo.checkpoint import default_model

sys.modules[__name__] = default_model
