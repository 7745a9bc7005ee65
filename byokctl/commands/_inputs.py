"""What several commands share: choosing the store, loading the files, output policy."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from byokctl.catalog import PROVIDERS, document_settings
from byokctl.commands._tracked import tracked_secret_files
from byokctl.config.discover import DEFAULT_PATH
from byokctl.config.loader import load_desired
from byokctl.errors import ConfigError, StoreError
from byokctl.model import DesiredState, LiveState, Secret, Workspace
from byokctl.plan import Plan, diff
from byokctl.resolver import Resolver
from byokctl.resolver.options import ResolverOptions
from byokctl.store import (
    DEFAULT_STORE_URL,
    Store,
    check_store_url,
    load_master_key,
    load_next_keys,
    open_store,
    safe_url,
    store_exists,
)
from byokctl.store.runtime import open_runtime_store

STORE_ENV = "BYOK_STORE"
#: Where the local default store and its auto-created master key live.
LOCAL_DIR = Path(".byok")


def store_url(given: str | None, env: Mapping[str, str] = os.environ) -> str:
    """``--store``, else ``BYOK_STORE``, else the local SQLite default."""
    return given or env.get(STORE_ENV) or DEFAULT_STORE_URL


def open_live_store(url: str, *, err: TextIO, create: bool = False) -> Store:
    """Open the store at ``url`` with the operator's master key (created for the local default).

    Only a command that writes configuration (``apply``) may ``create`` a store: a
    read that finds none is an error, so a mistyped path does not look like an empty store.
    """
    check_store_url(url)  # a typo in the URL is reported as such, before any key question
    if not create and not store_exists(url):
        raise StoreError(
            f"no store at {safe_url(url)}",
            hint="check --store / BYOK_STORE; `byokctl apply` creates the store",
        )
    loaded = load_master_key(os.environ, store_url=url, byok_dir=LOCAL_DIR)
    if loaded.created:
        print(
            f"byokctl: created a master key for the local store in {loaded.source} (mode 0600); "
            "keep it: it decrypts the API keys in the store",
            file=err,
        )
    return open_store(url, master_key=loaded.key, extra_keys=load_next_keys(os.environ))


def read_desired(
    paths: Sequence[str], *, err: TextIO, refused: str = "nothing was planned"
) -> DesiredState:
    """Load, validate and decrypt the files; print every diagnostic; refuse on any error.

    ``refused`` says what the command therefore did not do.
    """
    from byokctl.sops import load_identities  # noqa: PLC0415 - only when decrypting

    loaded = load_desired(paths, identities=load_identities())
    for d in [*tracked_secret_files(), *loaded.diagnostics]:
        print(d.format(), file=err)
    from byokctl.github import Actions  # noqa: PLC0415

    actions = Actions.from_env()
    if actions is not None:  # the same findings as annotations on the pull request's files
        actions.annotate(loaded.diagnostics, err)
    if not loaded.ok:
        errors = sum(d.severity == "error" for d in loaded.diagnostics)
        raise ConfigError(
            f"{errors} error(s) in the workspace files; {refused}",
            hint="fix them (`byokctl validate` shows the structural ones without a key)",
        )
    return loaded.desired


def make_plan(
    paths: Sequence[str], store: Store | None, *, targets: Sequence[str] | None, err: TextIO
) -> Plan:
    """Files + live store → plan, stamped with the PATH arguments it was made from.

    ``store`` is ``None`` when no store exists yet: the plan is against an empty state.
    """
    desired = read_desired(paths, err=err)
    live = store.read_state() if store is not None else LiveState(serial=0, workspaces={})
    refuse_unreadable(live, targets)
    if targets:
        known = set(desired.workspaces) | set(live.workspaces)
        for name in targets:
            if name not in known:
                print(
                    f"byokctl: warning: --target {name} matches no workspace in the files "
                    "or the store",
                    file=err,
                )
    plan = diff(desired, live, created_at=datetime.now(UTC), targets=targets or None)
    return replace(plan, paths=tuple(paths) or (DEFAULT_PATH,))


def refuse_unreadable(live: LiveState, targets: Sequence[str] | None) -> None:
    """Refuse to plan against a workspace whose live rows cannot be read.

    Without its rows the diff would see the workspace as absent and plan to create it
    (or, not in the files, to delete it) over rows that are still there. Outside
    ``--target`` it is not planned, so it does not block.
    """
    scope = set(targets) if targets else None
    bad = [u for name, u in live.unreadable.items() if scope is None or name in scope]
    if not bad:
        return
    names = ", ".join(repr(u.name) for u in bad)
    what = "workspace" if len(bad) == 1 else "workspaces"
    problems = "; ".join(u.problem for u in bad)
    raise StoreError(
        f"cannot plan: the live store holds {what} {names}, but its rows are unreadable "
        f"({problems}); nothing was planned, since a plan must not create or delete a "
        "workspace over rows it cannot read",
        hint=f"restore or remove the damaged rows of {names} in the store (resolvers route "
        f"{'it' if len(bad) == 1 else 'them'} to Neo meanwhile), or plan the others with --target",
    )


def warn_unreadable(live: LiveState, err: TextIO) -> None:
    """Say on ``err`` which live workspaces are left out because their rows do not read."""
    for u in live.unreadable.values():
        print(
            f"byokctl: warning: workspace {u.name!r} is in the store but left out: its rows "
            f"are unreadable ({u.problem})",
            file=err,
        )


def refuse_if_unreadable(live: LiveState, names: Sequence[str]) -> None:
    """An error for the first of ``names`` whose live rows do not read."""
    for name in names:
        u = live.unreadable.get(name)
        if u is not None:
            raise StoreError(
                f"workspace {name!r} is in the store, but its rows are unreadable ({u.problem})",
                hint="restore or remove its damaged rows in the store",
            )


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def provider_documents(
    workspace: Workspace, secret: Callable[[Secret], str]
) -> dict[str, dict[str, Any]]:
    """``spec.providers`` as a workspace file spells it; ``secret`` renders each key."""
    return {
        pid: {
            "model": config.model,
            **(
                document_settings(PROVIDERS[pid], config.settings)
                if pid in PROVIDERS
                else config.settings
            ),
            **({"models": dict(config.models)} if config.models else {}),
            **{name: secret(value) for name, value in config.secrets.items()},
        }
        for pid, config in workspace.providers.items()
    }


@contextmanager
def open_resolver(store: str | None, *, err: TextIO, notify: bool = False) -> Iterator[Resolver]:
    """A resolver over the live and runtime stores at ``store``, refreshed only on demand.

    ``notify=False`` for a command that only looks: it must never send a failure e-mail
    itself; ``probe`` records verdicts and so delivers the e-mails they are owed.
    """
    url = store_url(store)
    live = open_live_store(url, err=err)
    try:
        runtime = open_runtime_store(url)
    except BaseException:
        live.close()
        raise
    options = ResolverOptions(refresh_interval=None, notify=notify)
    with Resolver(live, runtime, options, owns_stores=True) as resolver:
        yield resolver
