"""The application's ``interp`` verbs: each module here is registered under the entry-point group
``interp.commands`` in ``pyproject.toml`` (see `interp.cli.plugins`) and has ``add_parser(subparsers)`` and
``run(args) -> int``, like the library's own verbs."""
