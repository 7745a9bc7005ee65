"""The client's rules hold over the aiohttp transport it uses: real loopback sockets."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import pytest

from byokctl.model import Workspace
from byokctl.verify import Outcome, RetryPolicy, verify_workspaces
from byokctl.verify._http import MAX_BODY_BYTES
from byokctl.verify._run import list_models
from tests.verify.conftest import ProviderServer, Reply
from tests.verify.shapes import config, env_for, model_list

ONCE = RetryPolicy(attempts=1)


def test_a_cookie_an_answer_sets_is_never_sent(provider_server: ProviderServer) -> None:
    # One workspace's answer must not ride along with another's request.
    provider_server.route(
        "/openai/v1/models",
        Reply(200, model_list("openai"), {"set-cookie": "session=from-ws-a; Path=/"}),
    )
    workspaces = [
        Workspace(f"ws-{i}", providers={"openai": config("openai", f"sk-cookie-test-{i:04d}")})
        for i in range(3)
    ]
    # By name: a cookie jar may refuse cookies from a bare IP address, which would hide one.
    env = {k: v.replace("127.0.0.1", "localhost") for k, v in env_for(provider_server).items()}
    checks = verify_workspaces(workspaces, parallelism=1, env=env, retry=ONCE)
    assert {c.outcome for cs in checks.values() for c in cs} == {"ok"}
    seen = provider_server.seen("/openai/v1/models")
    assert len(seen) == 3
    assert all("cookie" not in {h.lower() for h in s.headers} for s in seen)


def test_requests_carry_the_clients_headers_only(provider_server: ProviderServer) -> None:
    provider_server.route("/openai/v1/models", Reply(200, model_list("openai")))
    list_models(config("openai", "sk-headers-test-0001"), env=env_for(provider_server), retry=ONCE)
    (seen,) = provider_server.seen("/openai/v1/models")
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["user-agent"] == "byokctl-verify"  # not aiohttp's own
    assert headers["authorization"] == "Bearer sk-headers-test-0001"


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(wbits=wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", lambda data: _deflate(data, zlib.MAX_WBITS)),  # zlib-wrapped
        ("deflate", lambda data: _deflate(data, -zlib.MAX_WBITS)),  # raw, as some servers send
    ],
)
def test_a_compressed_answer_is_decoded_once(
    provider_server: ProviderServer, encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    # The transport passes the body through undecoded; fetch decodes it (under the cap).
    body = pack(json.dumps(model_list("openai")).encode())
    provider_server.route(
        "/openai/v1/models",
        Reply(200, body, {"content-encoding": encoding, "content-type": "application/json"}),
    )
    got = list_models(
        config("openai", "sk-packed-test-0001"), env=env_for(provider_server), retry=ONCE
    )
    assert got.classification.outcome is Outcome.OK
    assert "gpt-4o" in got.models


def test_a_small_answer_that_unpacks_past_the_cap_is_refused(
    provider_server: ProviderServer,
) -> None:
    # ~20 KB on the wire, 20 MB decoded: the cap counts what would be held in memory.
    body = gzip.compress(b" " * (20 * 1024 * 1024))
    assert len(body) < MAX_BODY_BYTES // 100
    provider_server.route(
        "/openai/v1/models",
        Reply(200, body, {"content-encoding": "gzip", "content-type": "application/json"}),
    )
    got = list_models(
        config("openai", "sk-gzip-bomb-test-0001"), env=env_for(provider_server), retry=ONCE
    )
    assert got.classification.outcome is Outcome.UNEXPECTED
    assert f"larger than {MAX_BODY_BYTES // (1024 * 1024)} MB" in got.classification.detail


def test_a_corrupt_gzip_answer_is_unexpected(provider_server: ProviderServer) -> None:
    provider_server.route(
        "/openai/v1/models",
        Reply(200, b"\x1f\x8b\x08\x00not gzip at all", {"content-encoding": "gzip"}),
    )
    got = list_models(
        config("openai", "sk-gzip-corrupt-0001"), env=env_for(provider_server), retry=ONCE
    )
    assert got.classification.outcome is Outcome.UNEXPECTED
