"""Entry point of an inference process: ``python -m shipyard.runtimes.worker``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from shipyard.runtimes.child import child_main
from shipyard.runtimes.child_log import ChildLog
from shipyard.runtimes.frames import RawHandler


def main(argv: list[str] | None = None, handler: RawHandler | None = None) -> int:
    """Parse the arguments ``InferenceProcess`` passes and run the child; ``handler``
    answers raw batches (the server's entry point passes one)."""
    parser = argparse.ArgumentParser(prog="shipyard-inference-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--trust", action="store_true")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--log", default=None,
                        help="ChildLog as JSON (a list: one per path): log the batches")
    parser.add_argument("--spool", action="append", default=[],
                        help="where the log's spool files go (one per path)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run at this much lower CPU priority (os.nice), threads included")
    parser.add_argument("paths", nargs="+", metavar="path",
                        help="the package (several: a joint process, raw batches only)")
    args = parser.parse_args(argv)
    # the server's SIGINT/SIGTERM handling owns shutdown: it drains, then closes the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.nice:  # before the model loads: the runtime's threads inherit it
        os.nice(args.nice)
    given = [] if args.log is None else json.loads(args.log)
    logs = [ChildLog(**spec) for spec in (given if isinstance(given, list) else [given])]
    return child_main(args.fd, args.paths, trust=args.trust, runtime=args.runtime, logs=logs,
                      handler=handler, spools=[Path(s) for s in args.spool])


if __name__ == "__main__":
    sys.exit(main())
