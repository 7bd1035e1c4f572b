"""Deprecated location, kept for one release; import from bertzoo.inference.vectors.

Embedding output controls (normalisation, dimension cut, storage precision) moved to
:mod:`bertzoo.inference.vectors`; this module re-exports its public names.
"""

from __future__ import annotations

from bertzoo.inference.vectors import (
    PRECISIONS,
    ShapedVectors,
    check_output_options,
    restore_vectors,
    shape_vectors,
)

__all__ = ["PRECISIONS", "ShapedVectors", "check_output_options", "restore_vectors", "shape_vectors"]
