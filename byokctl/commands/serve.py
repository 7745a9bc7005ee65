"""``byokctl serve`` and ``byokctl serve token add``: the resolver over HTTP, and its tokens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from byokctl.commands._inputs import store_url
from byokctl.errors import ByokError
from byokctl.store import safe_url


def _missing_extra(exc: ImportError) -> ByokError:
    return ByokError(
        f"byokctl serve needs the serve extra ({exc.name} is not installed)",
        hint="pip install 'byokctl[serve]'",
    )


def serve(*, host: str, port: int, store: str | None, err: TextIO) -> int:
    """Serve the API, the fleet page and the metrics until SIGINT/SIGTERM."""
    url = store_url(store)
    try:
        from byokctl.serve import run  # noqa: PLC0415 - starlette/uvicorn only here
    except ImportError as exc:
        raise _missing_extra(exc) from None
    print(f"byokctl serve: {safe_url(url)}", file=err, flush=True)
    run(host=host, port=port, store_url=url)
    return 0


def token_add(*, scopes: str, tokens_file: str | None, out: TextIO, err: TextIO) -> int:
    """Append a new token's digest to the tokens file; print the token once."""
    from byokctl.serve.auth import TOKENS_FILE_ENV, add_token, parse_scopes  # noqa: PLC0415

    path = tokens_file or os.environ.get(TOKENS_FILE_ENV)
    if not path:
        raise ByokError(
            "no tokens file named",
            hint=f"pass --tokens-file FILE or set {TOKENS_FILE_ENV}",
        )
    chosen = parse_scopes(scopes)
    token = add_token(Path(path), chosen)
    print(token, file=out)
    print(
        f"added a token with scopes {', '.join(sorted(chosen))} to {path}; it is shown only "
        "this once (the file keeps its SHA-256)",
        file=err,
    )
    return 0
