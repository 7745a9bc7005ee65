"""A loopback stand-in for the GitHub REST endpoints byokctl uses; it records every request.

Real HTTP on 127.0.0.1 (the standard library's threaded server): issue comments (list
with ``Link`` pagination, create, edit, delete) and issues (list by label, create, edit).
``fail(...)`` queues answers to give instead (401, 403, 429 with ``Retry-After`` …).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghs_FAKE-token-canary-7d1e"
LOGIN = "github-actions[bot]"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str


@dataclass
class Failure:
    method: str
    path_pattern: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "failed"})


class FakeGitHub:
    """State and request log of the fake API; ``url`` is its API root."""

    def __init__(self, repo: str = "acme/byok-config") -> None:
        self.repo = repo
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.issues: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.url = ""
        self._next_id = 1000
        self._lock = threading.Lock()

    def fail(self, method: str, path_pattern: str, status: int, **kw: Any) -> None:
        """Answer the next request matching ``method`` and the regex with ``status``."""
        self.failures.append(Failure(method, path_pattern, status, **kw))

    def add_comment(self, issue: int, body: str, login: str = "someone") -> dict[str, Any]:
        with self._lock:
            return self._add_comment(issue, body, login)

    def _add_comment(self, issue: int, body: str, login: str) -> dict[str, Any]:
        self._next_id += 1
        c = {
            "id": self._next_id,
            "body": body,
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
            "html_url": f"https://github.example/{self.repo}/pull/{issue}#issuecomment-{self._next_id}",
        }
        self.comments.setdefault(issue, []).append(c)
        return c

    def bodies(self) -> list[str]:
        return [r.body for r in self.requests]

    # -- the HTTP side ------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
            for f in self.failures:
                if f.method == method and re.fullmatch(f.path_pattern, parts.path):
                    self.failures.remove(f)
                    return f.status, f.headers, f.body
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return 401, {}, {"message": "Bad credentials"}
            return self._route(method, parts.path, query, json.loads(body) if body else None)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], doc: Any
    ) -> tuple[int, dict[str, str], Any]:
        base = f"/repos/{self.repo}"
        if m := re.fullmatch(rf"{base}/issues/(\d+)/comments", path):
            issue = int(m.group(1))
            if method == "GET":
                return self._page(path, query, self.comments.get(issue, []))
            if method == "POST":
                return 201, {}, self._add_comment(issue, doc["body"], LOGIN)
        if m := re.fullmatch(rf"{base}/issues/comments/(\d+)", path):
            cid = int(m.group(1))
            for items in self.comments.values():
                for c in items:
                    if c["id"] == cid:
                        if method == "PATCH":
                            c["body"] = doc["body"]
                            return 200, {}, c
                        if method == "DELETE":
                            items.remove(c)
                            return 204, {}, None
            return 404, {}, {"message": "Not Found"}
        if path == f"{base}/issues":
            if method == "GET":
                label = query.get("labels", [""])[0]
                found = [i for i in self.issues if i["state"] == "open" and label in i["labels"]]
                return self._page(path, query, found)
            if method == "POST":
                self._next_id += 1
                issue = {
                    "number": self._next_id,
                    "title": doc["title"],
                    "body": doc["body"],
                    "labels": doc["labels"],
                    "state": "open",
                    "html_url": f"https://github.example/{self.repo}/issues/{self._next_id}",
                }
                self.issues.append(issue)
                return 201, {}, issue
        if (m := re.fullmatch(rf"{base}/issues/(\d+)", path)) and method == "PATCH":
            for issue in self.issues:
                if issue["number"] == int(m.group(1)):
                    issue.update({k: v for k, v in doc.items() if k in ("body", "state")})
                    return 200, {}, issue
        return 404, {}, {"message": "Not Found"}

    def _page(
        self, path: str, query: dict[str, list[str]], items: list[dict[str, Any]]
    ) -> tuple[int, dict[str, str], Any]:
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "page")
            headers["Link"] = f'<{self.url}{path}?{rest}&page={page + 1}>; rel="next"'
        return 200, headers, chunk


@contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run ``fake`` on a free loopback port for the block."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, doc = fake.handle(self.command, self.path, headers, body)
            payload = b"" if doc is None else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
