"""`audience-pipeline serve`: load the warehouse, start the reloader, run uvicorn."""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass

from audience_pipeline.api.auth import TOKEN_ENV, token_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    warehouse: str
    definitions: str
    host: str = "127.0.0.1"
    port: int = 8000
    events_days: int = 14
    poll_seconds: float = 1.0
    access_log: bool = False


def serve(options: ServeOptions) -> int:
    """Serve until interrupted; 2 when the token is missing or the warehouse cannot be read."""
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(
            f"error: set {TOKEN_ENV} to the access token clients must send (HTTP basic auth "
            "user name); the Profile API does not start without one",
            file=sys.stderr,
        )
        return 2
    problem = token_problem(token)
    if problem is not None:
        print(f"error: {TOKEN_ENV}: {problem}", file=sys.stderr)
        return 2
    try:
        # Bound before the warehouse is loaded: a busy port is one line, not a load and a
        # traceback; uvicorn serves on this very socket, so nobody can take the port meanwhile.
        listener = _bind(options.host, options.port)
    except OSError as error:
        print(f"error: --port {options.port}: cannot listen on {options.host}: "
              f"{error.strerror or error}", file=sys.stderr)  # fmt: skip
        return 2
    import uvicorn

    from audience_pipeline.api.app import create_app
    from audience_pipeline.api.store import Store

    store = Store(
        options.warehouse,
        options.definitions,
        events_days=options.events_days,
        poll_seconds=options.poll_seconds,
    )
    generation = store.load()
    print(
        f"serving {options.warehouse} (as of {generation.as_of.isoformat()}, "
        f"{len(generation.users.ids)} profiles, {len(generation.accounts.ids)} accounts, "
        f"loaded in {generation.load_seconds:.1f} s) on http://{options.host}:{listener.getsockname()[1]}",
        flush=True,
    )
    # A reload builds the next generation in a thread; a shorter switch interval lets the
    # request thread (which gives the GIL up at every socket call) get it back sooner.
    sys.setswitchinterval(0.001)
    store.start()
    app = create_app(store, token, definitions_dir=options.definitions)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, access_log=options.access_log,
        log_level="info", server_header=False,
    )  # fmt: skip
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        pass
    finally:
        store.stop()
        listener.close()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


__all__ = ["ServeOptions", "serve"]
