"""The ``tagger`` command line: one module per group of commands, each adding its own
subparsers next to its code (``rules``; ``replay``, ``simulate``; ``run``, ``produce``,
``demo``; ``profile``, ``schema``), and the helpers they share in ``common``."""

from streams.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
