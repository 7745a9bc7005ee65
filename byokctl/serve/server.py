"""Running the server: the bind rule, the stores, one resolver, uvicorn.

A loopback bind (``127.0.0.1``, ``::1``, ``localhost``) may run open (every loopback
client has the open scopes) or with tokens; any other address refuses to start without
``BYOK_SERVE_TOKENS_FILE``. uvicorn handles SIGINT/SIGTERM: the application's shutdown
closes the resolver, which flushes the credit buffer.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from byokctl.errors import ByokError
from byokctl.resolver import Resolver
from byokctl.store import load_master_key, load_next_keys, open_store
from byokctl.store.runtime import open_runtime_store

from .access import Access
from .auth import TOKENS_FILE_ENV, Sessions, Tokens
from .state import ServeState


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_for(host: str, env: Mapping[str, str]) -> Access:
    """The access rules for a bind on ``host``: refuse a non-loopback bind without tokens."""
    path = env.get(TOKENS_FILE_ENV)
    if not path:
        if not is_loopback(host):
            raise ByokError(
                f"refusing to serve on {host} without tokens: anyone who can reach it could "
                "resolve routes and clear failures",
                hint=f"set {TOKENS_FILE_ENV} (`byokctl serve token add --scopes read` "
                "writes one), or bind 127.0.0.1",
            )
        return Access(None, Sessions())
    tokens = Tokens.load(Path(path))
    if not len(tokens):
        raise ByokError(
            f"the tokens file {path} holds no token",
            hint="`byokctl serve token add --scopes read` adds one",
        )
    return Access(tokens, Sessions())


def open_state(store_url: str, access: Access, env: Mapping[str, str]) -> ServeState:
    """The stores and the one resolver of this process."""
    key = load_master_key(env, store_url=store_url, byok_dir=Path(".byok")).key
    extra = load_next_keys(env)
    resolver = Resolver.from_url(store_url, master_key=key, env=env)
    try:
        store = open_store(store_url, master_key=key, extra_keys=extra)
        runtime = open_runtime_store(store_url)
    except BaseException:
        resolver.close()
        raise
    return ServeState(resolver, store, runtime, access)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: FrameType | None) -> None:
    del signum, frame


def run(*, host: str, port: int, store_url: str, env: Mapping[str, str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then close the resolver (flushing credits) and the stores."""
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from .app import create_app  # noqa: PLC0415

    env = dict(os.environ) if env is None else env
    access = access_for(host, env)
    state = open_state(store_url, access, env)
    logging.getLogger("byokctl.serve").setLevel(logging.INFO)
    try:
        config = uvicorn.Config(
            create_app(state),
            host=host.strip("[]"),
            port=port,
            log_level="info",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        # uvicorn re-raises the signal that stopped it once it has shut down, under the
        # handler that was there before it: ours ignores it, so the stores below are
        # closed and the command exits 0 after a graceful stop.
        quiet = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, _ignore) for s in _STOP_SIGNALS} if quiet else {}
        try:
            uvicorn.Server(config).run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        state.resolver.close()  # idempotent: the lifespan closed it unless startup failed
        state.runtime.close()
        state.store.close()
