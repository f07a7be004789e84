"""``sharelift ossd``: run the OSS-compatible object server until SIGTERM/SIGINT.

The AccessKeySecret comes from ``--access-key-secret`` or, so that it does not show in
``ps``, from the environment variable ``SHARELIFT_OSSD_ACCESS_KEY_SECRET``. It is never
logged. When the server accepts connections it prints one line to stdout::

    ossd listening on http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sharelift.ossd import SECRET_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="folder that holds the buckets (created if missing)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    parser.add_argument("--access-key-id", required=True, help="the one AccessKeyId accepted")
    parser.add_argument(
        "--access-key-secret",
        default=None,
        help=f"its AccessKeySecret (better: set {SECRET_ENV}, which ps does not show)",
    )
    parser.add_argument(
        "--region", default="cn-hangzhou", help="region of the buckets; V4 signatures must use it"
    )
    parser.add_argument(
        "--any-region", action="store_true", help="accept V4 signatures made for any region"
    )
    parser.add_argument(
        "--domain",
        action="append",
        default=None,
        help="endpoint host name for virtual-hosted requests (Host: <bucket>.<domain>); "
        "repeatable; default: localhost, oss.localhost and 127.0.0.1",
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="do not fsync objects (faster, not crash-safe)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    from sharelift.ossd.auth import Authenticator
    from sharelift.ossd.server import make_server, serve_in_thread
    from sharelift.ossd.store import Store

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("sharelift.ossd")
    secret = args.access_key_secret or os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"ossd: no AccessKeySecret: set {SECRET_ENV} or --access-key-secret", file=sys.stderr)
        return 2
    store = Store(args.data_dir, region=args.region, fsync=not args.no_fsync)
    try:
        store.open()
    except (OSError, RuntimeError) as e:
        print(f"ossd: cannot open data directory: {e}", file=sys.stderr)
        return 1
    auth = Authenticator(args.access_key_id, secret, None if args.any_region else args.region)
    try:
        server = make_server(store, auth, args.host, args.port, args.domain)
    except OSError as e:
        print(f"ossd: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        store.close()
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("ossd: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    thread = serve_in_thread(server)
    host, port = server.server_name, server.server_port
    log.info(
        "ossd: data in %s, %d bucket(s), access key id %s",
        args.data_dir,
        len(store.list_buckets()),
        args.access_key_id,
    )
    print(f"ossd listening on http://{host}:{port}", flush=True)
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                log.error("ossd: server thread died")
                return 1
    finally:
        server.shutdown()
        server.server_close()
        store.close()
    return 0
