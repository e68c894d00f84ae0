"""The ``shipyard`` entry point (``run``).

A plain ``shipyard predict`` line (see ``plain_args``) calls the command without building the
typer app: a batch run's start-up is part of its time. Every other line, and predict's help
and mistakes, go through the typer app (``cli/app.py``), which ``app`` here names too.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from shipyard.errors import ShipyardError


def run() -> None:
    """Entry point: shipyard errors print as one clear line and exit 1, without a traceback."""
    try:
        if not _run_plain(sys.argv[1:]):
            from shipyard.cli.app import app

            app()
    except ShipyardError as exc:
        from rich.console import Console

        # one line, however narrow the terminal: a URL in it stays whole
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False,
                                   soft_wrap=True)
        raise SystemExit(1) from None


def _run_plain(args: list[str]) -> bool:
    """Run ``predict`` from a plain command line; False when typer must parse it."""
    if not args or args[0] != "predict":
        return False
    from shipyard.cli.plain_args import plain_kwargs
    from shipyard.cli.predict import predict

    kwargs = plain_kwargs(predict, args[1:])
    if kwargs is None:
        return False
    try:
        predict(**kwargs)
    except KeyboardInterrupt:  # as click says it
        print("\nAborted!", file=sys.stderr)
        raise SystemExit(1) from None
    # the process ends here: without this, its last garbage collection walked every object
    # the imports made (~50 ms after the output was written)
    gc.freeze()
    return True


def __getattr__(name: str) -> Any:
    if name == "app":
        from shipyard.cli.app import app

        return app
    raise AttributeError(f"module 'shipyard.cli.main' has no attribute {name!r}")


if __name__ == "__main__":
    run()
