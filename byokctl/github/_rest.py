"""The few GitHub REST endpoints byokctl uses, over httpx, with clear errors.

Issue comments (a pull request is an issue for comments) and issues (the drift issue):
list (paginated by the ``Link`` header), create, edit, delete. Rate limits are waited
out when GitHub says how long (``Retry-After``, or ``x-ratelimit-reset`` with no
requests left), within a bound; everything else becomes a :class:`GitHubError` that says
what to do. The token is sent only to the configured API root, never printed, and
redirects are not followed (they could take the ``Authorization`` header elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx

from byokctl import __version__
from byokctl.errors import ByokError

DEFAULT_API_URL: Final = "https://api.github.com"
#: At most this many seconds are spent waiting out rate limits in one call.
DEFAULT_MAX_WAIT: Final = 60.0
_MAX_PAGES: Final = 100  # 10,000 comments: far beyond any pull request
_PER_PAGE: Final = 100
_MAX_RETRIES: Final = 5

Json = dict[str, Any]


class GitHubError(ByokError):
    """The GitHub API refused or failed a request. ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class Repository:
    """``owner/name`` as in ``$GITHUB_REPOSITORY``."""

    owner: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Repository:
        """``OWNER/NAME`` → a repository; a clear error for anything else."""
        owner, sep, name = text.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ByokError(
                f"not a repository: {text!r} (expected OWNER/NAME)",
                hint="set GITHUB_REPOSITORY=OWNER/NAME (the runner sets it)",
            )
        return cls(owner, name)

    @property
    def path(self) -> str:
        """The repository's REST path, ``/repos/OWNER/NAME``."""
        return f"/repos/{self.owner}/{self.name}"


class GitHubClient:
    """A small client for one repository. Use as a context manager."""

    def __init__(
        self,
        repository: Repository,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        max_wait: float = DEFAULT_MAX_WAIT,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"byokctl/{__version__}",
            },
            timeout=timeout,
            follow_redirects=False,
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    # -- issue comments (pull-request conversation) ------------------------------------

    def comments(self, issue: int) -> Iterator[Json]:
        """Every comment on issue or pull request ``issue``, oldest first (all pages)."""
        return self._pages(f"{self.repository.path}/issues/{issue}/comments")

    def create_comment(self, issue: int, body: str) -> Json:
        """Post a new comment on issue or pull request ``issue``."""
        return self._json("POST", f"{self.repository.path}/issues/{issue}/comments", {"body": body})

    def update_comment(self, comment_id: int, body: str) -> Json:
        """Replace the body of comment ``comment_id``."""
        return self._json(
            "PATCH", f"{self.repository.path}/issues/comments/{comment_id}", {"body": body}
        )

    def delete_comment(self, comment_id: int) -> None:
        """Delete comment ``comment_id``."""
        self._request("DELETE", f"{self.repository.path}/issues/comments/{comment_id}")

    # -- issues (the drift issue) ------------------------------------------------------

    def open_issues(self, label: str) -> Iterator[Json]:
        """Open issues (not pull requests) carrying ``label``."""
        for item in self._pages(
            f"{self.repository.path}/issues", {"labels": label, "state": "open"}
        ):
            if "pull_request" not in item:
                yield item

    def create_issue(self, title: str, body: str, labels: list[str]) -> Json:
        """Open an issue with ``labels``."""
        return self._json(
            "POST",
            f"{self.repository.path}/issues",
            {"title": title, "body": body, "labels": labels},
        )

    def update_issue(self, number: int, fields: Json) -> Json:
        """Edit issue ``number`` (its body, or its state to close it)."""
        return self._json("PATCH", f"{self.repository.path}/issues/{number}", fields)

    # -- the transport -----------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[Json]:
        url: str | None = path
        query: dict[str, str] | None = {**(params or {}), "per_page": str(_PER_PAGE)}
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self._request("GET", url, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(
                    f"GitHub answered GET {path} with something other than a list",
                    status=response.status_code,
                )
            yield from items
            # The next page's URL carries every parameter already.
            url, query = self._next(response), None
        raise GitHubError(f"GET {path}: more than {_MAX_PAGES} pages", status=200)

    def _next(self, response: httpx.Response) -> str | None:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        # Follow only links back to our own API root: the token goes with the request.
        if not link.startswith(str(self._http.base_url).rstrip("/") + "/"):
            raise GitHubError(
                "GitHub's next-page link points outside the API root; not following it",
                status=response.status_code,
            )
        return link

    def _json(self, method: str, path: str, body: Json) -> Json:
        answer = self._request(method, path, json=body).json()
        if not isinstance(answer, dict):
            raise GitHubError(f"GitHub answered {method} {path} with no object", status=0)
        return answer

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        waited = 0.0
        for _ in range(_MAX_RETRIES + 1):
            try:
                response = self._http.request(method, path, json=json, params=params)
            except httpx.HTTPError as exc:
                # httpx's message names the URL, never the headers: still say it ourselves.
                raise GitHubError(
                    f"cannot reach the GitHub API at {self._http.base_url} ({type(exc).__name__})",
                    status=0,
                    hint="check GITHUB_API_URL (GitHub Enterprise: https://HOST/api/v3) "
                    "and the network",
                ) from None
            if response.is_success:
                return response
            delay = self._rate_limit_delay(response)
            if delay is None:
                raise _error(method, path, response)
            if waited + delay > self._max_wait:
                raise GitHubError(
                    f"GitHub's rate limit: {method} {path} may retry in {delay:.0f} s, "
                    f"more than the {self._max_wait:.0f} s byokctl waits",
                    # 429 even when GitHub said 403: a rate limit is not a read-only token.
                    status=429,
                    hint="run the job again later, or use a token with a higher limit",
                )
            self._sleep(delay)
            waited += delay
        raise GitHubError(
            f"GitHub's rate limit: {method} {path} still limited after {_MAX_RETRIES} retries",
            status=429,
            hint="run the job again later, or use a token with a higher limit",
        )

    def _rate_limit_delay(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, or ``None`` when this is no rate limit."""
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return None
        if response.headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(response.headers.get("x-ratelimit-reset", ""))
            except ValueError:
                return None
            return max(0.0, reset - self._clock())
        if response.status_code == 429:
            return 1.0  # a 429 without a hint: GitHub's docs say wait at least a minute
        return None


def _message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    text = str(doc.get("message", ""))
    errors = doc.get("errors")
    if isinstance(errors, list):
        details = [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)]
        text += "".join(f"; {d}" for d in details if d and d != "None")
    # GitHub's own words, shortened and on one line.
    return " ".join(text.split())[:300]


def _error(method: str, path: str, response: httpx.Response) -> GitHubError:
    status = response.status_code
    said = _message(response)
    said = f": {said}" if said else ""
    if status == 401:
        return GitHubError(
            f"GitHub rejected the token (401{said})",
            status=status,
            hint="pass a valid token in GITHUB_TOKEN (the action's github-token input)",
        )
    if status == 403:
        return GitHubError(
            f"the token may not {method} {path} (403{said}); on a pull request from a fork "
            "GitHub gives the workflow a read-only token",
            status=status,
            hint="grant `pull-requests: write` (and `issues: write` for the drift issue); for "
            "fork pull requests pass --allow-readonly to skip the comment",
        )
    if status == 404:
        return GitHubError(
            f"not found: {method} {path} (404{said})",
            status=status,
            hint="check GITHUB_REPOSITORY and the pull-request number (--pr), and that the "
            "token can see the repository",
        )
    if status == 422:
        return GitHubError(
            f"GitHub refused {method} {path} (422{said})",
            status=status,
            hint="the comment may be too long or malformed; report it with the plan file",
        )
    return GitHubError(f"GitHub answered {method} {path} with {status}{said}", status=status)
