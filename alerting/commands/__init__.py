"""One module per ``alerting`` subcommand, each with ``main(args) -> int``.

``main`` is the only place that reads ``argparse`` values; it passes typed values to the
module's ``run(...)`` and the library below. Nothing outside ``alerting.cli`` imports a command.
"""
