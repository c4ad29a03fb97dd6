"""``fastals serve MODEL.npz``: the model as an HTTP JSON service (see :mod:`fastals.serve`).

Imports: the standard library, :mod:`fastals.cli.console` and, inside the command,
:mod:`fastals.serve` (which needs the ``fastals[serve]`` extra: starlette and uvicorn).
"""
from __future__ import annotations

import ipaddress
import sys

from fastals.cli.console import CLIError


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args, console):
    from pathlib import Path

    from fastals.serve.workers import configure_logging, serve

    path = Path(args.model)
    if not path.exists():
        raise CLIError(f"{args.model}: no such model file")
    if path.is_dir():
        raise CLIError(f"{args.model} is a folder, not a model file")
    configure_logging(args.log_level)
    threads = 1 if args.threads is None else args.threads

    def ready(host, port):
        shown = f"[{host}]" if ":" in host else host
        workers = f"{args.workers} worker{'s' if args.workers != 1 else ''}"
        print(f"fastals serve: {args.model} on http://{shown}:{port} ({workers}, "
              f"{threads} kernel thread{'s' if threads != 1 else ''} each); Ctrl-C stops",
              file=sys.stderr, flush=True)
        if not _is_loopback(host):
            console.note(f"note: listening on {host}, beyond this machine, with no "
                         "authentication or TLS: put a proxy in front of it")

    return serve(path, host=args.host, port=args.port, workers=args.workers, threads=threads,
                 max_n=args.max_n, max_batch=args.max_batch, log_level=args.log_level,
                 access_log=args.access_log, on_ready=ready)
