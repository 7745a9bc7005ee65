"""Backend-neutral encodings: ciphertext binding, drift digests, and rows <-> workspaces.

Shared by every backend so that a store's meaning does not depend on where it lives (a
later ``migrate-store`` can copy rows between backends unchanged): each backend only
moves the tuples built here in and out of its tables. Timestamps travel as ISO-8601
text on the way in (SQLite stores them so; PostgreSQL casts them to ``timestamptz``)
and may come back as text or as ``datetime``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from byokctl.errors import LockHeldError, StalePlanError, StoreError
from byokctl.model import (
    FallbackPolicy,
    LiveState,
    LiveWorkspace,
    ProviderConfig,
    Secret,
    UnreadableWorkspace,
    Workspace,
)

from ._keys import Keyring, MasterKey
from ._types import AuditChange, AuditEntry, LockInfo, WorkspaceWrite

#: ``(name, notify JSON, enabled, applied digest, updated at, updated by, fallback JSON)``;
#: the fallback policy is ``NULL`` for the default (and in rows written before schema 5).
WorkspaceRow = tuple[str, str, str | None, bytes | None, str | datetime, str, str | None]
#: ``(workspace, provider, model, settings JSON, models JSON)``; models ``NULL``: none.
ProviderRow = tuple[str, str, str, str, str | None]
#: ``(workspace, provider, field, key id, nonce, ciphertext)``
SecretRow = tuple[str, str, str, str, bytes, bytes]


def secret_aad(workspace: str, provider: str, field: str) -> bytes:
    """Additional data binding a ciphertext to its row; a JSON list, so no separator games."""
    return json.dumps(["byokctl-secret/v1", workspace, provider, field]).encode()


def canonical(workspace: Workspace, fingerprint_key: bytes) -> bytes:
    """A canonical encoding of a workspace; secrets appear only as keyed fingerprints.

    A default fallback policy and an empty ``models`` map are left out, so a workspace
    without them encodes (and digests) as it did before they existed: a store written
    then shows no drift now.
    """
    providers: dict[str, dict[str, object]] = {}
    for pid, cfg in workspace.providers.items():
        entry: dict[str, object] = {
            "model": cfg.model,
            "settings": dict(cfg.settings),
            "secrets": {f: s.fingerprint(fingerprint_key) for f, s in cfg.secrets.items()},
        }
        if cfg.models:
            entry["models"] = dict(cfg.models)
        providers[pid] = entry
    doc: dict[str, object] = {
        "name": workspace.name,
        "notify": list(workspace.notify),
        "enabled": workspace.enabled,
        "providers": providers,
    }
    if not workspace.fallback.is_default:
        doc["fallback"] = workspace.fallback.fields()
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def workspace_digest(workspace: Workspace, digest_key: bytes) -> bytes:
    """HMAC-SHA256 over the canonical form: what drift detection compares."""
    return hmac.new(digest_key, canonical(workspace, digest_key), hashlib.sha256).digest()


def rekey_digest(old_digest: bytes, digest_key: bytes) -> bytes:
    """A digest for a *drifted* workspace after key rotation.

    The canonical form apply last wrote is not kept, so it cannot be re-digested under
    the new key; this value never equals a real digest, so the workspace stays drifted
    until the next apply (which is what drift means).
    """
    return hmac.new(digest_key, b"rotated:" + old_digest, hashlib.sha256).digest()


def as_utc(value: str | datetime) -> datetime:
    """A stored timestamp (ISO text or ``datetime``) as an aware UTC ``datetime``."""
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.astimezone(UTC)


@dataclass(frozen=True)
class ConfigRows:
    """One snapshot's configuration rows, as read in one transaction."""

    serial: int
    key_id: str | None
    workspaces: list[WorkspaceRow]
    providers: list[ProviderRow]
    secrets: list[SecretRow]


@dataclass(frozen=True)
class DecodedWorkspace:
    """A workspace read back, with what apply last wrote (its digest) and who changed it."""

    workspace: Workspace
    applied_digest: bytes | None
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class EncodedWrites:
    """Writes turned into rows: deletes, workspace rows, upserted names, providers, secrets."""

    deletes: list[tuple[str]]
    workspaces: list[tuple[str, str, str | None, bytes | None, str, str, str | None]]
    upserted: list[tuple[str]]
    providers: list[ProviderRow]
    secrets: list[SecretRow]


def encode_writes(
    writes: Sequence[WorkspaceWrite], key: MasterKey, *, at: datetime, who: str, managed: bool
) -> EncodedWrites:
    """Encrypt and encode ``writes``; ``managed`` writes carry a fresh drift digest.

    Called before the backend's transaction starts, so its write lock is held only for
    the inserts themselves.
    """
    enc = EncodedWrites([], [], [], [], [])
    stamp = at.isoformat()
    for w in writes:
        ws = w.workspace
        if ws is None:
            enc.deletes.append((w.name,))
            continue
        digest = workspace_digest(ws, key.digest_key) if managed else None
        notify = json.dumps(list(ws.notify))
        policy = None if ws.fallback.is_default else json.dumps(ws.fallback.fields())
        enc.workspaces.append((ws.name, notify, ws.enabled, digest, stamp, who, policy))
        enc.upserted.append((ws.name,))
        for pid, cfg in ws.providers.items():
            models = json.dumps(dict(cfg.models)) if cfg.models else None
            settings = json.dumps(dict(cfg.settings))
            enc.providers.append((ws.name, pid, cfg.model, settings, models))
            for field, secret in cfg.secrets.items():
                nonce, ct = key.encrypt(secret.reveal().encode(), secret_aad(ws.name, pid, field))
                enc.secrets.append((ws.name, pid, field, key.key_id, nonce, ct))
    return enc


@dataclass(frozen=True)
class DecodedRows:
    """One snapshot decoded: the workspaces that read, and those that do not."""

    workspaces: dict[str, DecodedWorkspace]
    unreadable: dict[str, UnreadableWorkspace]


def _rows_digest(rows: Sequence[tuple[object, ...]]) -> str:
    """SHA-256 of a workspace's raw rows (ciphertext included: it reveals nothing)."""
    h = hashlib.sha256()
    for row in sorted(rows, key=repr):
        h.update(repr(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def decode_rows(rows: ConfigRows, keyring: Keyring) -> DecodedRows:
    """Decrypt and decode one snapshot, isolating each workspace's bad rows to it.

    A row that does not decode (malformed JSON or timestamp) or decrypt (altered, or
    copied from another row, which its additional data gives away) makes its workspace
    *unreadable*; every other workspace decodes normally. A master key that is not the
    store's is not a row's fault: that stays a :class:`MasterKeyError` for the whole store.
    """
    if rows.key_id is not None and rows.secrets:
        keyring.require(rows.key_id)  # the wrong master key: a configuration error
    problems: dict[str, str] = {}
    raw: dict[str, list[tuple[object, ...]]] = {}
    secrets: dict[tuple[str, str], dict[str, Secret]] = {}
    for secret_row in rows.secrets:
        ws_name, pid, field = secret_row[:3]
        raw.setdefault(ws_name, []).append(secret_row)
        try:
            secrets.setdefault((ws_name, pid), {})[field] = _decrypt(
                keyring, rows.key_id, secret_row
            )
        except StoreError as exc:
            problems.setdefault(ws_name, exc.message)
    providers: dict[str, dict[str, ProviderConfig]] = {}
    for provider_row in rows.providers:
        ws_name, pid, model, settings, models = provider_row
        raw.setdefault(ws_name, []).append(provider_row)
        row = f"provider {pid!r} of workspace {ws_name!r}"
        try:
            providers.setdefault(ws_name, {})[pid] = ProviderConfig(
                provider=pid,
                model=model,
                settings=_settings(settings, row),
                secrets=secrets.get((ws_name, pid), {}),
                models={} if models is None else _strings(models, row, "models"),
            )
        except StoreError as exc:
            problems.setdefault(ws_name, exc.message)
    out = DecodedRows({}, {})
    for ws_row in rows.workspaces:
        name, notify, enabled, applied, updated_at, updated_by, policy = ws_row
        row = f"workspace {name!r}"
        problem = problems.get(name)
        if problem is None:
            try:
                ws = Workspace(
                    name=name,
                    notify=_notify(notify, row),
                    enabled=enabled,
                    providers=providers.get(name, {}),
                    fallback=_fallback(policy, row),
                )
                updated = _timestamp(updated_at, row, "updated_at")
            except StoreError as exc:
                problem = exc.message
            else:
                out.workspaces[name] = DecodedWorkspace(ws, applied, updated, updated_by)
                continue
        try:
            recipients = _notify(notify, row)
        except StoreError:
            recipients = ()
        out.unreadable[name] = UnreadableWorkspace(
            name=name,
            problem=problem,
            enabled=enabled if isinstance(enabled, str) else None,
            notify=recipients,
            rows_digest=_rows_digest([ws_row, *raw.get(name, [])]),
        )
    return out


def _decrypt(keyring: Keyring, store_key_id: str | None, row: SecretRow) -> Secret:
    """One secret row's plaintext; a StoreError naming the row (never a value) if it fails."""
    ws_name, pid, field, key_id, nonce, ct = row
    where = f"the secret {field!r} of provider {pid!r} in workspace {ws_name!r}"
    if store_key_id is not None and keyring.get(key_id) is None:
        # The store's own key is in the keyring (checked first): this row alone names
        # another key, so the row was altered or copied in from another store.
        raise StoreError(f"{where} names a master key this store does not use")
    try:
        plain = keyring.decrypt(key_id, nonce, ct, secret_aad(ws_name, pid, field))
        value = None if plain is None else plain.decode()
    except (TypeError, ValueError):
        # A nonce of the wrong length, a value of the wrong type, or a plaintext that is
        # not UTF-8: the row is damaged. (Raised below, outside this block, so that the
        # error carries no cause that could show bytes.)
        value = None
    if value is None:
        raise StoreError(
            f"{where} does not decrypt: the row was altered, or copied from another row",
            hint="apply the workspace from its files again to rewrite it",
        )
    return Secret(value)


def malformed_row(row: str, column: str, expected: str) -> StoreError:
    """The error for a stored value that does not decode; names the row and column, never the value.

    A value in a store may be anything someone wrote into it; repeating it could show
    something that should not be in a message (or a terminal escape), so it stays out.
    """
    return StoreError(
        f"the store's row for {row} is malformed: its {column} column is not {expected}",
        hint="apply the workspace from its files again to rewrite it",
    )


def _json(text: str, row: str, column: str, expected: str) -> object:
    try:
        value: object = json.loads(text)
    except (TypeError, ValueError):
        # ``from None``: a JSONDecodeError's context is the value.
        raise malformed_row(row, column, expected) from None
    return value


def _settings(text: str, row: str) -> dict[str, str]:
    """A provider's settings: a JSON object of strings (what :func:`encode_writes` writes)."""
    return _strings(text, row, "settings")


def _strings(text: str, row: str, column: str) -> dict[str, str]:
    """A JSON object of strings (settings, per-feature models)."""
    expected = "a JSON object of strings"
    value = _json(text, row, column, expected)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise malformed_row(row, column, expected)
    return value


def _fallback(text: str | None, row: str) -> FallbackPolicy:
    """A workspace's fallback policy; ``NULL`` is the default (rows before schema 5)."""
    if text is None:
        return FallbackPolicy()
    expected = "a fallback policy (a JSON object)"
    value = _json(text, row, "fallback", expected)
    if not isinstance(value, dict):
        raise malformed_row(row, "fallback", expected)
    try:
        return FallbackPolicy.from_fields(value)
    except (TypeError, ValueError):
        raise malformed_row(row, "fallback", expected) from None


def _notify(text: str, row: str) -> tuple[str, ...]:
    """A workspace's e-mail recipients: a JSON list of strings."""
    expected = "a JSON list of strings"
    value = _json(text, row, "notify", expected)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise malformed_row(row, "notify", expected)
    return tuple(value)


def _timestamp(value: str | datetime, row: str, column: str) -> datetime:
    try:
        return as_utc(value)
    except (TypeError, ValueError, AttributeError):
        # ``from None``: fromisoformat's message repeats the value.
        raise malformed_row(row, column, "a timestamp") from None


def live_state(rows: ConfigRows, keyring: Keyring, *, store: str) -> LiveState:
    """The live state one snapshot describes, with each workspace's drift flag."""
    result = decode_rows(rows, keyring)
    decoded = result.workspaces
    digest_key: bytes | None = None
    if any(d.applied_digest is not None for d in decoded.values()):
        if rows.key_id is None:
            raise StoreError(f"the store {store} has digests but no master key record")
        digest_key = keyring.require(rows.key_id).digest_key
    live: dict[str, LiveWorkspace] = {}
    for name, d in decoded.items():
        drifted = False
        if d.applied_digest is not None and digest_key is not None:
            now = workspace_digest(d.workspace, digest_key)
            drifted = not hmac.compare_digest(now, d.applied_digest)
        live[name] = LiveWorkspace(
            workspace=d.workspace,
            managed=d.applied_digest is not None,
            drifted=drifted,
            updated_at=d.updated_at,
            updated_by=d.updated_by,
        )
    return LiveState(serial=rows.serial, workspaces=live, unreadable=result.unreadable)


@dataclass(frozen=True)
class Rotation:
    """Row updates that re-encrypt a store under a new master key.

    ``secrets``: ``(key id, nonce, ciphertext, workspace, provider, field)``;
    ``digests``: ``(digest, workspace name)``.
    """

    secrets: list[tuple[str, bytes, bytes, str, str, str]]
    digests: list[tuple[bytes, str]]


def rotation(rows: ConfigRows, keyring: Keyring, new_key: MasterKey) -> Rotation:
    """Re-encrypt every secret and re-key every digest (drift survives: see rekey_digest).

    A store with an unreadable workspace is refused: its secrets cannot be re-encrypted,
    and a rotation that left them under the retired key would lose them for good.
    """
    result = decode_rows(rows, keyring)
    if result.unreadable:
        names = ", ".join(sorted(result.unreadable))
        first = next(iter(sorted(result.unreadable.items())))[1]
        raise StoreError(
            f"cannot rotate the master key: the store's rows for {names} are unreadable "
            f"({first.problem})",
            hint="repair or remove those rows first (byokctl plan names each), then rotate",
        )
    decoded = result.workspaces
    old = keyring.require(rows.key_id) if rows.key_id is not None else None
    sec_updates = []
    for ws_name, pid, field, _key_id, _nonce, _ct in rows.secrets:
        secret = decoded[ws_name].workspace.providers[pid].secrets[field]
        nonce, ct = new_key.encrypt(secret.reveal().encode(), secret_aad(ws_name, pid, field))
        sec_updates.append((new_key.key_id, nonce, ct, ws_name, pid, field))
    digest_updates = []
    for name, d in decoded.items():
        if d.applied_digest is None or old is None:
            continue
        unchanged = hmac.compare_digest(
            workspace_digest(d.workspace, old.digest_key), d.applied_digest
        )
        new_digest = (
            workspace_digest(d.workspace, new_key.digest_key)
            if unchanged
            else rekey_digest(d.applied_digest, new_key.digest_key)
        )
        digest_updates.append((new_digest, name))
    return Rotation(sec_updates, digest_updates)


def audit_changes_json(entry: AuditEntry) -> str:
    """An audit entry's changes as JSON (field paths only, never values)."""
    return json.dumps(
        [
            {"workspace": ch.workspace, "action": ch.action, "fields": list(ch.fields)}
            for ch in entry.changes
        ]
    )


def audit_entry(
    at: str | datetime, who: str, operation: str, serial: int, changes: str
) -> AuditEntry:
    """An audit entry from its stored row."""
    return AuditEntry(
        who=who,
        at=as_utc(at),
        operation=operation,
        serial=int(serial),
        changes=tuple(
            AuditChange(ch["workspace"], ch["action"], tuple(ch["fields"]))
            for ch in json.loads(changes)
        ),
    )


def stale_plan_error(current: int, expected: int) -> StalePlanError:
    """The error for a write made against a serial the store has moved past."""
    return StalePlanError(
        f"the store changed since the plan was made: its serial is {current}, "
        f"the plan was made at serial {expected}",
        hint="run plan again against the current state",
    )


def lock_held_error(held: LockInfo) -> LockHeldError:
    """The error for a lock that stayed held past the caller's timeout."""
    return LockHeldError(
        f"the store is locked: {held.describe()}; if that run is no longer alive, "
        f"release the lock with: byokctl force-unlock {held.id}",
        hint="wait for it to finish, or raise --lock-timeout to wait longer",
    )


def check_write(writes: Sequence[WorkspaceWrite], expected_serial: int, audit: AuditEntry) -> None:
    """The argument checks every backend's ``write`` makes before touching the store."""
    if audit.serial != expected_serial + 1:
        raise ValueError(f"audit.serial must be {expected_serial + 1}, not {audit.serial}")
    names = [w.name for w in writes]
    if len(set(names)) != len(names):
        raise ValueError("a workspace appears more than once in one write")
