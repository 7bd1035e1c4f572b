"""Task heads, one module per family, registered through entry points in group ``bertzoo``."""
