"""Verify many provider configurations concurrently: bounded, retried, cached.

Every configured provider of every workspace is checked once per distinct credential (two
workspaces sharing a key share one check). At most ``parallelism`` checks talk to
providers at a time; a check that ends transient (rate limited, outage, timeout,
unexpected) is retried with exponential backoff and full jitter, waiting for the
provider's ``Retry-After`` when it asks for no more than :attr:`RetryPolicy.retry_after_cap`
(a longer wait is not worth stalling a plan: the result is reported instead). The slot
is released while waiting, so backoff never idles the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO, TypedDict, Unpack

import httpx

from byokctl.catalog import PROVIDERS
from byokctl.classify import (
    Classification,
    Outcome,
    classify_exception,
    classify_key_format,
)
from byokctl.model import DesiredState, ProviderConfig, Workspace
from byokctl.plan import CredentialCheck
from byokctl.verify._adapters import ADAPTERS, ModelList, judge
from byokctl.verify._cache import CacheWriter, VerifyCache
from byokctl.verify._http import (
    AddressResolver,
    Client,
    Endpoint,
    base_url_for,
    checked_endpoint,
    make_client,
    private_allowed,
    system_resolver,
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient outcomes."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 5.0
    #: The longest ``Retry-After`` honoured; a provider asking for more is not retried.
    retry_after_cap: float = 10.0


@dataclass(frozen=True)
class Verified:
    """One configuration's verdict, and the model ids its key can use."""

    provider: str
    classification: Classification
    models: tuple[str, ...]
    cached: bool = False
    #: The account balance the provider reported (DeepSeek); ``None``: not reported, cached.
    balance: float | None = None

    def check(self) -> CredentialCheck:
        """As the plan records it."""
        detail = self.classification.detail + (" (cached)" if self.cached else "")
        return CredentialCheck(self.provider, self.classification.outcome.value, detail)


@dataclass
class _Context:
    client: Client
    #: At most ``parallelism`` requests at a time.
    slots: asyncio.Semaphore
    env: Mapping[str, str]
    resolver: AddressResolver
    cache: VerifyCache | None
    writer: CacheWriter | None
    retry: RetryPolicy
    sleep: Sleep
    rng: random.Random


def _missing_key(provider: str) -> Verified:
    return Verified(provider, Classification(Outcome.INVALID_KEY, "no api_key is configured"), ())


async def _attempt(
    client: Client,
    ctx: _Context,
    endpoint: Endpoint,
    config: ProviderConfig,
    key: str,
) -> ModelList:
    try:
        checked = await checked_endpoint(
            endpoint, resolver=ctx.resolver, allow_private=private_allowed(ctx.env)
        )
        return await ADAPTERS[config.provider].probe(client, checked, config, key)
    except Exception as exc:
        return ModelList(classify_exception(config.provider, exc))


async def _verify_one(ctx: _Context, config: ProviderConfig) -> Verified:
    provider = config.provider
    secret = config.secrets.get("api_key")
    if secret is None and not PROVIDERS[provider].key_optional:
        return _missing_key(provider)
    key = "" if secret is None else secret.reveal()  # "": a server without auth
    # Before any request: such a key cannot be sent (httpx would raise mid-request), and
    # no provider could accept it, so it is a finding about the key, not a failure.
    malformed = classify_key_format(provider, key) if key else None
    if malformed is not None:
        return Verified(provider, malformed, ())
    endpoint = base_url_for(provider, config, ctx.env)
    fingerprint = None
    if ctx.cache is not None and ctx.cache.enabled:
        try:
            fingerprint = ctx.cache.fingerprint(
                provider,
                key,
                endpoint.base_url,
                {
                    "model": config.model,
                    **config.settings,
                    # absent when empty: entries cached before per-feature models still hit
                    **{f"models.{f}": m for f, m in config.models.items()},
                    # a workspace endpoint's verdict depends on what the operator allows
                    **_allowance(endpoint, ctx.env),
                },
            )
        except OSError:
            fingerprint = None  # an unwritable cache only costs the provider calls
        hit = ctx.cache.get(fingerprint) if fingerprint else None
        if hit is not None:
            return Verified(provider, hit.classification, hit.models, cached=True)
    listed = ModelList(Classification(Outcome.UNEXPECTED, ""))
    for attempt in range(ctx.retry.attempts):
        async with ctx.slots:
            listed = await _attempt(ctx.client, ctx, endpoint, config, key)
        result = listed.classification
        if not result.transient or attempt == ctx.retry.attempts - 1:
            break
        if result.retry_after is not None:
            if result.retry_after > ctx.retry.retry_after_cap:
                break
            delay = result.retry_after
        else:
            ceiling = min(ctx.retry.max_delay, ctx.retry.base_delay * 2**attempt)
            delay = ctx.rng.uniform(0, ceiling)  # full jitter: retries do not stampede
        await ctx.sleep(delay)
    verdict = judge(provider, config, listed)
    if ctx.writer is not None and fingerprint is not None:
        # Kept for the run's one batch file, written when the run ends.
        ctx.writer.put(fingerprint, verdict, listed.models)
    return Verified(provider, verdict, listed.models, balance=listed.balance)


def _allowance(endpoint: Endpoint, env: Mapping[str, str]) -> dict[str, str]:
    """``BYOK_ALLOW_PRIVATE_ENDPOINTS`` as part of an untrusted endpoint's fingerprint.

    The guard's refusal is the operator's setting, not a fact about the credentials: a
    changed allowance must miss, both ways. Absent when unset, so other entries still hit.
    """
    if endpoint.trusted:
        return {}
    allowance = private_allowed(env)
    return {} if allowance == () else {"allow_private": str(allowance)}


def _identity(config: ProviderConfig) -> tuple[object, ...]:
    # Secrets compare and hash by value without exposing it; mappings are not hashable.
    return (
        config.provider,
        config.model,
        tuple(config.settings.items()),
        tuple(config.secrets.items()),
        tuple(config.models.items()),
    )


def _configs(workspaces: Iterable[Workspace]) -> list[tuple[str, ProviderConfig]]:
    return [(ws.name, config) for ws in workspaces for config in ws.providers.values()]


class Effects(TypedDict, total=False):
    """The injectable effects of a verification, named once for every entry point.

    Each is optional and defaults to the real thing: no cache, ``os.environ``, the system
    resolver, a real HTTP transport and timeout, :class:`RetryPolicy`, ``asyncio.sleep``.
    """

    cache: VerifyCache | None
    env: Mapping[str, str] | None
    resolver: AddressResolver | None
    transport: httpx.AsyncBaseTransport | None
    timeout: httpx.Timeout | None
    retry: RetryPolicy | None
    sleep: Sleep | None


async def averify_workspaces(
    workspaces: Iterable[Workspace],
    *,
    parallelism: int = 8,
    rng: random.Random | None = None,
    on_done: Callable[[], None] | None = None,
    **effects: Unpack[Effects],
) -> dict[str, tuple[Verified, ...]]:
    """Verify every configured provider of ``workspaces``; workspace name → results."""
    # The type checker rejects an unknown effect; keep rejecting it at run time too.
    if unknown := effects.keys() - Effects.__optional_keys__:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    pairs = _configs(workspaces)
    cache = effects.get("cache")
    writer = CacheWriter(cache) if cache is not None and cache.enabled else None
    with writer or contextlib.nullcontext():
        async with make_client(
            parallelism=parallelism,
            transport=effects.get("transport"),
            timeout=effects.get("timeout"),
        ) as client:
            env = effects.get("env")
            ctx = _Context(
                client=client,
                slots=asyncio.Semaphore(parallelism),
                env=os.environ if env is None else env,
                resolver=effects.get("resolver") or system_resolver,
                cache=cache,
                writer=writer,
                retry=effects.get("retry") or RetryPolicy(),
                sleep=effects.get("sleep") or asyncio.sleep,
                rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
            )
            # Identical configurations (a key shared by workspaces) are verified once.
            tasks: dict[tuple[object, ...], asyncio.Task[Verified]] = {}

            async def run(config: ProviderConfig) -> Verified:
                try:
                    return await _verify_one(ctx, config)
                finally:
                    if on_done is not None:
                        on_done()

            for _, config in pairs:
                if _identity(config) not in tasks:
                    tasks[_identity(config)] = asyncio.ensure_future(run(config))
            await asyncio.gather(*tasks.values())
    results: dict[str, list[Verified]] = {}
    for name, config in pairs:
        results.setdefault(name, []).append(tasks[_identity(config)].result())
    return {name: tuple(sorted(found, key=lambda v: v.provider)) for name, found in results.items()}


def verify_workspaces(
    workspaces: Iterable[Workspace],
    *,
    parallelism: int = 8,
    progress: bool = False,
    err: TextIO | None = None,
    **effects: Unpack[Effects],
) -> dict[str, tuple[CredentialCheck, ...]]:
    """Verify ``workspaces`` (blocking); workspace name → one check per configured provider.

    A progress bar is drawn on ``err`` (default stderr) only when ``progress`` is true
    and ``err`` is a terminal: CI logs get none. The cache carries its own (injectable)
    clock; the other :class:`Effects` (``env``, ``resolver``, ``transport``, ``sleep``…)
    make every other effect injectable.
    """
    workspaces = list(workspaces)
    stream = err if err is not None else sys.stderr
    total = sum(len(ws.providers) for ws in workspaces)

    def go(on_done: Callable[[], None] | None) -> dict[str, tuple[Verified, ...]]:
        return asyncio.run(
            averify_workspaces(workspaces, parallelism=parallelism, on_done=on_done, **effects)
        )

    if progress and total and stream.isatty():
        from rich.console import Console  # noqa: PLC0415 - only on a terminal
        from rich.progress import Progress  # noqa: PLC0415

        with Progress(console=Console(file=stream), transient=True) as bar:
            task = bar.add_task("Verifying credentials", total=total)
            found = go(lambda: bar.advance(task))
    else:
        found = go(None)
    return {name: tuple(v.check() for v in results) for name, results in found.items()}


def verify_desired(
    desired: DesiredState,
    *,
    parallelism: int = 8,
    progress: bool = False,
    err: TextIO | None = None,
    **effects: Unpack[Effects],
) -> dict[str, tuple[CredentialCheck, ...]]:
    """Verify every configured provider of every workspace in ``desired``."""
    return verify_workspaces(
        desired.workspaces.values(),
        parallelism=parallelism,
        progress=progress,
        err=err,
        **effects,
    )


def list_models(config: ProviderConfig, **effects: Unpack[Effects]) -> Verified:
    """Verify one configuration and return the model ids its key can use."""
    ws = Workspace(name="-", providers={config.provider: config})
    found = asyncio.run(averify_workspaces([ws], parallelism=1, **effects))
    return found["-"][0]
