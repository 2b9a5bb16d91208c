"""Subcommands of the ``rpnt`` command line (see :mod:`rpnt.cli`)."""
