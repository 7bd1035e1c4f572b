"""Sub-commands of the ``bertzoo`` CLI, one module each (listed in ``bertzoo.cli.COMMAND_MODULES``).

Each module defines ``add_parser(subparsers)``; importing it must stay light (no torch).
"""
