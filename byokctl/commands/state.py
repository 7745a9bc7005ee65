"""``byokctl state list | show NAME``: read the live store, secrets masked."""

from __future__ import annotations

import json
from typing import Any, Literal, TextIO

from byokctl.commands._inputs import (
    open_live_store,
    provider_documents,
    refuse_if_unreadable,
    store_url,
    warn_unreadable,
)
from byokctl.errors import StoreError
from byokctl.model import NEO, REDACTED, LiveWorkspace

Format = Literal["text", "json"]


def _document(live: LiveWorkspace) -> dict[str, Any]:
    ws = live.workspace
    policy = {} if ws.fallback.is_default else {"fallback": ws.fallback.fields()}
    return {
        "name": ws.name,
        "enabled": ws.enabled,
        "notify": list(ws.notify),
        **policy,
        "providers": provider_documents(ws, lambda _: REDACTED),
        "managed": live.managed,
        "drifted": live.drifted,
        "updated_at": live.updated_at.isoformat(),
        "updated_by": live.updated_by,
    }


def state_list(*, store: str | None, fmt: Format, out: TextIO, err: TextIO) -> int:
    """One line per live workspace: name, route, providers, managed or not."""
    with open_live_store(store_url(store), err=err) as live_store:
        state = live_store.read_state()
    warn_unreadable(state, err)
    if fmt == "json":
        doc = {
            "serial": state.serial,
            "workspaces": [_document(w) for w in state.workspaces.values()],
            "unreadable": [
                {"name": u.name, "problem": u.problem} for u in state.unreadable.values()
            ],
        }
        print(json.dumps(doc, indent=2), file=out)
        return 0
    print(f"serial {state.serial}, {len(state.workspaces)} workspace(s)", file=out)
    for name, live in state.workspaces.items():
        ws = live.workspace
        flags = [] if live.managed else ["unmanaged"]
        if live.drifted:
            flags.append("drifted")
        note = f"  [{', '.join(flags)}]" if flags else ""
        providers = ", ".join(ws.providers) or "-"
        print(f"{name:<32} enabled={ws.enabled or NEO:<17} providers={providers}{note}", file=out)
    return 0


def state_show(name: str, *, store: str | None, fmt: Format, out: TextIO, err: TextIO) -> int:
    """One live workspace in full, its API keys shown as ``(sensitive)``."""
    with open_live_store(store_url(store), err=err) as live_store:
        state = live_store.read_state()
    refuse_if_unreadable(state, [name])
    live = state.workspaces.get(name)
    if live is None:
        raise StoreError(
            f"no workspace {name!r} in the store (serial {state.serial})",
            hint="`byokctl state list` shows the workspaces it holds",
        )
    doc = _document(live)
    if fmt == "json":
        print(json.dumps(doc, indent=2), file=out)
        return 0
    print(f"workspace {name!r}", file=out)
    print(f"  enabled:    {doc['enabled'] or 'none (Neo)'}", file=out)
    print(f"  notify:     {', '.join(doc['notify']) or '-'}", file=out)
    print(
        f"  managed:    {'yes' if live.managed else 'no (byokctl import brings it in)'}", file=out
    )
    print(f"  drifted:    {'yes' if live.drifted else 'no'}", file=out)
    print(f"  updated:    {doc['updated_at']} by {doc['updated_by']}", file=out)
    for pid, fields in doc["providers"].items():
        print(f"  {pid}:", file=out)
        for key, value in fields.items():
            print(f"    {key}: {value}", file=out)
    return 0
