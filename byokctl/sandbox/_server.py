"""The loopback HTTP server: one port, the seven providers under path prefixes.

Built on the standard library's :class:`http.server.ThreadingHTTPServer` (a thread per
connection) so the sandbox adds no dependency; threads suit it because every request
mostly sleeps (``latency``, ``slow`` keys), and 50+ sleeping threads cost nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Final, NamedTuple, Self, cast
from urllib.parse import parse_qsl, urlsplit

from byokctl.catalog import PROVIDERS
from byokctl.sandbox._anthropic import AnthropicAPI
from byokctl.sandbox._api import Answer, Failure, ProviderAPI, Request, StreamFailure
from byokctl.sandbox._azure import AzureOpenAIAPI
from byokctl.sandbox._compatible import VARIANT_APIS, CompatibleAPI
from byokctl.sandbox._gemini import GeminiAPI
from byokctl.sandbox._markers import FLAKY_FAILURES, Behaviour, behaviour_for, fail_after
from byokctl.sandbox._openai import DeepSeekAPI, OpenAIAPI
from byokctl.sandbox._xai import XaiAPI

#: The provider stand-ins, by catalog id, in the catalog's order.
PROVIDER_APIS: Final[Mapping[str, ProviderAPI]] = MappingProxyType(
    {
        api.id: api
        for api in sorted(
            (
                OpenAIAPI(),
                AnthropicAPI(),
                GeminiAPI(),
                AzureOpenAIAPI(),
                XaiAPI(),
                DeepSeekAPI(),
                CompatibleAPI(),
            ),
            key=lambda a: list(PROVIDERS).index(a.id),
        )
    }
)

#: Every stand-in by prefix: one per provider, then the variants (another path, same id).
_ROUTED: Final[tuple[ProviderAPI, ...]] = (*PROVIDER_APIS.values(), *VARIANT_APIS)

#: Query parameters that carry a key in the URL. The sandbox refuses them (Gemini accepts
#: ``?key=``) because a key in a URL ends up in logs: byokctl must never send one.
_KEY_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "subscription-key", "access_token"})

#: Request bodies larger than this are refused; the inference endpoints need a few hundred bytes.
_MAX_BODY = 1 << 20

_BEHAVIOUR_FAILURE: Final[Mapping[Behaviour, Failure]] = {
    Behaviour.INVALID: Failure.INVALID_KEY,
    Behaviour.NO_CREDITS: Failure.NO_CREDITS,
    Behaviour.FORBIDDEN: Failure.FORBIDDEN,
    Behaviour.RATE_LIMITED: Failure.RATE_LIMITED,
    Behaviour.OUTAGE: Failure.OUTAGE,
}


def base_urls_for(root_url: str) -> dict[str, str]:
    """``BYOK_<PROVIDER>_BASE_URL`` -> URL for a sandbox at ``root_url`` (``http://host:port``)."""
    root = root_url.rstrip("/")
    return {PROVIDERS[p].base_url_env: f"{root}{PROVIDERS[p].sandbox_path}" for p in PROVIDER_APIS}


class LoggedRequest(NamedTuple):
    """One request the sandbox answered. Never holds the key: only a per-sandbox fingerprint."""

    method: str
    #: The path without its query string.
    path: str
    #: The provider id, or ``None`` for a path outside every provider's prefix.
    provider: str | None
    #: :meth:`Sandbox.fingerprint` of the key, or ``None`` when none was sent.
    key_fingerprint: str | None
    status: int


class Sandbox:
    """The seven providers' APIs on one loopback port, with behaviour chosen by the API key.

    Use it as a context manager::

        with Sandbox(port=0, latency=0.0) as sb:
            os.environ.update(sb.base_urls())
            ...
            assert len(sb.requests) == 6
    """

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = 0.0,
        slow_seconds: float = 5.0,
        stream_interval: float = 0.0,
        host: str = "127.0.0.1",
        on_request: Callable[[LoggedRequest], None] | None = None,
    ) -> None:
        """``port`` 0 picks a free port; ``latency`` seconds are added to every answer.

        ``stream_interval`` seconds pass between two events of a stream (0: none).
        """
        if latency < 0 or slow_seconds < 0 or stream_interval < 0:
            raise ValueError("latency, slow_seconds and stream_interval must not be negative")
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.stream_interval = stream_interval
        self._host = host
        self._port = port
        self._on_request = on_request
        # Fingerprints are keyed with a per-sandbox secret so that a log cannot be used to
        # test guesses of a key offline.
        self._salt = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._flaky_seen: dict[tuple[str, str], int] = {}
        self._waiting = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread. Raises :class:`OSError` if the port is taken."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._stopping.clear()
        server = _Server((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"byokctl-sandbox-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still waiting out a latency are cut short."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests and the CLI read -----------------------------------------------------

    @property
    def port(self) -> int:
        """The port the sandbox listens on (the one picked, when started with 0)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The root URL, e.g. ``http://127.0.0.1:PORT`` (``BYOK_SANDBOX_URL``)."""
        return f"http://{self._host}:{self.port}"

    def base_urls(self) -> dict[str, str]:
        """``BYOK_<PROVIDER>_BASE_URL`` -> URL, for the seven providers."""
        return base_urls_for(self.url)

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def waiting(self) -> int:
        """How many requests wait right now: a latency, a slow key's delay, a stream interval.

        Lets a caller see that requests arrived and are being held (all at once, for
        concurrency) without timing them; :meth:`stop` answers them at once.
        """
        with self._lock:
            return self._waiting

    def reset(self) -> None:
        """Forget the request log and the flaky keys' counts."""
        with self._lock:
            self._log.clear()
            self._flaky_seen.clear()

    def fingerprint(self, key: str) -> str:
        """The fingerprint this sandbox logs for ``key`` (not comparable across sandboxes)."""
        return hmac.new(self._salt, key.encode(), hashlib.sha256).hexdigest()[:16]

    # --- answering -----------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one request (``target`` is the request line's path with its query)."""
        split = urlsplit(target)
        api = next((a for a in _ROUTED if _under(split.path, a.prefix)), None)
        if api is None:
            answer = self._root(method, split.path)
            self._record(LoggedRequest(method, split.path, None, None, answer.status))
            return answer
        request = Request(
            method=method,
            path=split.path[len(api.prefix) :] or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )
        key = api.api_key(request)
        answer = self._answer(api, request, key)
        fingerprint = self.fingerprint(key) if key is not None else None
        self._record(LoggedRequest(method, split.path, api.id, fingerprint, answer.status))
        return answer

    def _answer(self, api: ProviderAPI, request: Request, key: str | None) -> Answer:
        self._wait(self.latency)
        if _KEY_PARAMS & set(request.query):
            return api.bad_request(
                "byokctl sandbox: an API key in the URL is refused (URLs end up in logs); "
                "send it in the provider's auth header"
            )
        endpoint = api.endpoint(request)
        if endpoint is None:
            return api.not_found(request)
        if key is None:
            return api.failure(Failure.MISSING_KEY)
        if (problem := api.precondition(request)) is not None:
            return problem
        behaviour = behaviour_for(key)
        if behaviour is Behaviour.SLOW:
            self._wait(self.slow_seconds)
        elif behaviour is Behaviour.FLAKY and self._flaky_fails(api.id, key):
            return api.failure(Failure.UNAVAILABLE)
        failure = _BEHAVIOUR_FAILURE.get(behaviour)
        if failure is not None and (after := fail_after(key)) is not None:
            # The failure comes inside a stream; whatever does not stream is OK.
            request = replace(request, midstream=StreamFailure(failure, after))
            failure = None
        if failure is None:
            return endpoint.handle(request)
        if (override := endpoint.overrides.get(failure)) is not None:
            return override(request)
        return api.failure(failure)

    def pause_between_events(self) -> None:
        """Wait ``stream_interval`` (counted in :attr:`waiting`; :meth:`stop` cuts it short)."""
        self._wait(self.stream_interval)

    def _flaky_fails(self, provider: str, key: str) -> bool:
        """Whether this request of a flaky key is one of its first failing ones."""
        slot = (provider, self.fingerprint(key))
        with self._lock:
            seen = self._flaky_seen.get(slot, 0) + 1
            self._flaky_seen[slot] = seen
        return seen <= FLAKY_FAILURES

    def _root(self, method: str, path: str) -> Answer:
        """``GET /``: where each provider lives; any other path outside them is a 404."""
        if method == "GET" and path in ("", "/"):
            return Answer(200, {"sandbox": "byokctl", "base_urls": self.base_urls()})
        return Answer(
            404,
            {"error": f"no provider serves {path}; see GET / for the base URLs"},
        )

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self._waiting += 1
        try:
            self._stopping.wait(seconds)
        finally:
            with self._lock:
                self._waiting -= 1

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)
        if self._on_request is not None:
            self._on_request(entry)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The benchmark opens 50+ connections at once; the default backlog of 5 would make the
    # kernel drop SYNs and the clients wait a second for the retransmit.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-answer (a verification timing out) is routine here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as the providers do and as httpx's pool expects.
    protocol_version = "HTTP/1.1"
    #: An idle keep-alive connection is closed after this many seconds.
    timeout = 30
    # Headers and body go out in two writes; with Nagle's algorithm on, the second waits
    # for the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        sandbox = cast(_Server, self.server).sandbox
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._send(Answer(413 if length > 0 else 400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length) if length else b""
        self._send(sandbox.answer(self.command, self.path, dict(self.headers.items()), body))

    def _send(self, answer: Answer) -> None:
        try:
            reason = HTTPStatus(answer.status).phrase
        except ValueError:
            reason = "Overloaded" if answer.status == 529 else ""
        self.send_response(answer.status, reason)
        self.send_header("Content-Type", answer.content_type)
        if answer.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            payload = json.dumps(answer.body).encode()
            self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            # The client asked for Connection: close; say so, as real servers do, or a
            # client may pool the connection this server is about to close.
            self.send_header("Connection", "close")
        self.end_headers()
        if answer.stream is None:
            self.wfile.write(payload)
            return
        # One HTTP chunk per event, written as it comes, as the providers stream.
        sandbox = cast(_Server, self.server).sandbox
        for i, piece in enumerate(p for p in answer.stream if p):  # empty would end the body
            if i:
                sandbox.pause_between_events()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the sandbox keeps its own log, which never holds a key."""
