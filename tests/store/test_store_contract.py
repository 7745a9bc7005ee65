"""The store contract: every backend must pass these, unchanged."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from byokctl.errors import LockHeldError, MasterKeyError, StalePlanError, StoreError
from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.store import AuditChange, AuditEntry, MasterKey, Store, WorkspaceWrite
from tests.store.storetest_helpers import CANARY, Backend, workspace


def _audit(serial: int, *changes: AuditChange, who: str = "tester") -> AuditEntry:
    return AuditEntry(who, datetime.now(UTC), "apply", serial, changes)


def _write(store: Store, *workspaces: Workspace, deletes: tuple[str, ...] = ()) -> int:
    serial = store.serial()
    writes = [WorkspaceWrite.upsert(w) for w in workspaces]
    writes += [WorkspaceWrite.delete(n) for n in deletes]
    changes = [AuditChange(w.name, "create", ("providers",)) for w in workspaces]
    changes += [AuditChange(n, "delete") for n in deletes]
    return store.write(writes, expected_serial=serial, audit=_audit(serial + 1, *changes))


def test_new_store_is_empty(store: Store) -> None:
    state = store.read_state()
    assert state.serial == 0
    assert dict(state.workspaces) == {}
    assert store.serial() == 0
    assert store.lock_info() is None
    assert store.audit_log() == []
    assert store.schema_version() >= 2


def test_write_round_trips_workspaces_and_secrets(store: Store) -> None:
    a = workspace("acme", azure=True)
    b = workspace("beta", enabled=None, notify=())
    assert _write(store, a, b) == 1
    state = store.read_state()
    assert state.serial == 1
    assert state.workspaces["acme"].workspace == a
    assert state.workspaces["beta"].workspace == b
    live = state.workspaces["acme"]
    assert live.managed
    assert not live.drifted
    assert live.updated_by == "tester"
    key = live.workspace.providers["openai"].secrets["api_key"]
    assert key.reveal() == a.providers["openai"].secrets["api_key"].reveal()


def test_upsert_replaces_providers_and_delete_removes(store: Store) -> None:
    _write(store, workspace("acme", azure=True), workspace("beta"))
    _write(store, workspace("acme", model="gpt-4.1"), deletes=("beta",))
    state = store.read_state()
    assert set(state.workspaces) == {"acme"}
    acme = state.workspaces["acme"].workspace
    assert set(acme.providers) == {"openai"}
    assert acme.providers["openai"].model == "gpt-4.1"
    assert state.serial == 2


def test_stale_serial_is_refused_and_nothing_is_written(store: Store) -> None:
    _write(store, workspace("acme"))
    before = store.read_state()
    with pytest.raises(StalePlanError, match="serial is 1, the plan was made at serial 0"):
        store.write(
            [WorkspaceWrite.upsert(workspace("intruder"))],
            expected_serial=0,
            audit=_audit(1, AuditChange("intruder", "create")),
        )
    after = store.read_state()
    assert after.serial == 1
    assert set(after.workspaces) == set(before.workspaces)
    assert len(store.audit_log()) == 1


def test_write_rejects_a_mismatched_audit_serial_and_duplicates(store: Store) -> None:
    with pytest.raises(ValueError, match=r"audit\.serial"):
        store.write([], expected_serial=0, audit=_audit(5))
    w = WorkspaceWrite.upsert(workspace("acme"))
    with pytest.raises(ValueError, match="more than once"):
        store.write([w, w], expected_serial=0, audit=_audit(1))
    assert store.serial() == 0


def test_audit_log_is_newest_first_with_field_paths_and_no_values(store: Store) -> None:
    secret = workspace("acme").providers["openai"].secrets["api_key"].reveal()
    store.write(
        [WorkspaceWrite.upsert(workspace("acme", key=secret))],
        expected_serial=0,
        audit=_audit(1, AuditChange("acme", "create", ("providers.openai.api_key",))),
    )
    _write(store, deletes=("acme",))
    log = store.audit_log()
    assert [e.serial for e in log] == [2, 1]
    assert log[1].changes == (AuditChange("acme", "create", ("providers.openai.api_key",)),)
    assert log[1].who == "tester"
    assert log[1].operation == "apply"
    assert log[0].changes == (AuditChange("acme", "delete", ()),)
    assert store.audit_log(limit=1) == log[:1]
    assert CANARY not in repr(log)


def test_lock_shows_holder_operation_time_and_id(backend: Backend, master_key: MasterKey) -> None:
    first, second = backend.open(master_key), backend.open(master_key)
    try:
        with first.lock("alice@ci (pid 1)", "apply", timeout=0) as info:
            held = second.lock_info()
            assert held == info
            started = time.monotonic()
            with (
                pytest.raises(LockHeldError) as excinfo,
                second.lock("bob", "apply", timeout=0.3),
            ):
                pass  # pragma: no cover - never entered
            assert time.monotonic() - started >= 0.3
            message = str(excinfo.value)
            assert "alice@ci (pid 1)" in message
            assert "'apply'" in message
            assert info.id in message
            assert f"byokctl force-unlock {info.id}" in message
            assert f"{info.created:%Y-%m-%d %H:%M:%S}" in message
        assert second.lock_info() is None
    finally:
        first.close()
        second.close()


def test_lock_is_released_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.lock("me", "apply", timeout=0):
        raise RuntimeError("boom")
    assert store.lock_info() is None


def test_lock_waits_until_released(backend: Backend, master_key: MasterKey) -> None:
    first, second = backend.open(master_key), backend.open(master_key)
    acquired = threading.Event()

    def hold() -> None:
        with first.lock("slow", "apply", timeout=0):
            acquired.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert acquired.wait(5)
        with second.lock("patient", "apply", timeout=10) as info:
            assert second.lock_info() == info
    finally:
        thread.join()
        first.close()
        second.close()


def test_force_unlock(store: Store) -> None:
    lock = store.lock("crashed run", "apply", timeout=0)
    info = lock.__enter__()  # a run that died without releasing
    with pytest.raises(StoreError, match="no lock with id 'nope'"):
        store.force_unlock("nope")
    store.force_unlock(info.id)
    assert store.lock_info() is None
    with pytest.raises(StoreError, match="unlocked"):
        store.force_unlock(info.id)
    with store.lock("next", "apply", timeout=0):
        pass


def test_drift_is_reported_for_out_of_band_changes(store: Store) -> None:
    acme = workspace("acme")
    _write(store, acme, workspace("beta"), workspace("gamma"))
    store.put_unmanaged(workspace("acme", model="gpt-4o-mini", key="x" * 20), updated_by="app")
    rotated = workspace("beta")  # same shape, new API key: drift too
    store.put_unmanaged(rotated, updated_by="app")
    store.put_unmanaged(workspace("fresh"), updated_by="settings page")
    state = store.read_state()
    assert state.serial == 4  # every out-of-band write moves the serial
    assert state.workspaces["acme"].drifted
    assert state.workspaces["acme"].managed
    assert state.workspaces["acme"].updated_by == "app"
    assert state.workspaces["beta"].drifted
    assert not state.workspaces["gamma"].drifted
    assert not state.workspaces["fresh"].managed
    assert not state.workspaces["fresh"].drifted
    # Apply writing the workspace again takes it back under management.
    _write(store, acme, workspace("fresh"))
    again = store.read_state()
    assert not again.workspaces["acme"].drifted
    assert again.workspaces["fresh"].managed


def test_drift_back_to_what_apply_wrote_is_not_drift(store: Store) -> None:
    acme = workspace("acme")
    _write(store, acme)
    store.put_unmanaged(Workspace("acme", notify=(), enabled=None), updated_by="app")
    assert store.read_state().workspaces["acme"].drifted
    store.put_unmanaged(acme, updated_by="app")
    assert not store.read_state().workspaces["acme"].drifted


def test_wrong_master_key_is_a_clear_error(backend: Backend, master_key: MasterKey) -> None:
    with backend.open(master_key) as s:
        _write(s, workspace("acme"))
    other = MasterKey.generate()
    wrong = backend.open(other)
    try:
        with pytest.raises(MasterKeyError) as excinfo:
            wrong.read_state()
        message = str(excinfo.value)
        assert "does not match the one this store was written with" in message
        assert master_key.key_id in message
        assert CANARY not in message
        with pytest.raises(MasterKeyError):
            _write(wrong, workspace("intruder"))
        with pytest.raises(MasterKeyError):
            wrong.put_unmanaged(workspace("intruder"), updated_by="app")
        assert wrong.serial() == 1  # reads that need no key still work
    finally:
        wrong.close()


def test_rotate_key_reencrypts_everything(backend: Backend, master_key: MasterKey) -> None:
    old_reader = backend.open(master_key)
    s = backend.open(master_key)
    try:
        _write(s, workspace("acme", azure=True), workspace("beta"), workspace("gamma"))
        s.put_unmanaged(workspace("beta", model="drifted-model"), updated_by="app")
        before = s.read_state()
        new = MasterKey.generate()
        assert s.rotate_master_key(new, who="operator") == 4
        assert s.audit_log(limit=1)[0].operation == "rotate-key"
        assert s.serial() == before.serial  # the configuration did not change

        # Only the new key reads it now; drift flags survive the rotation.
        with backend.open(new) as fresh:
            after = fresh.read_state()
            assert after.workspaces == before.workspaces
            assert after.workspaces["beta"].drifted
            assert not after.workspaces["acme"].drifted
        with pytest.raises(MasterKeyError, match=new.key_id):
            old_reader.read_state()
        # A reader that holds both keys works throughout a rolling rotation.
        with backend.open(master_key, extra=[new]) as both:
            assert both.read_state().workspaces == before.workspaces
            with pytest.raises(MasterKeyError, match="now key id"):
                _write(both, workspace("delta"))  # but it must not write with the old key
        # The rotating store object carries on with the new key.
        _write(s, workspace("delta"))
        assert set(s.read_state().workspaces) == {"acme", "beta", "gamma", "delta"}
        with pytest.raises(MasterKeyError, match="already uses"):
            s.rotate_master_key(new, who="operator")
    finally:
        old_reader.close()
        s.close()


def test_secret_values_never_appear_in_messages_or_reprs(store: Store) -> None:
    acme = workspace("acme")
    _write(store, acme)
    state = store.read_state()
    assert CANARY not in repr(state)
    assert CANARY not in repr(store)
    assert CANARY not in repr(store.audit_log())
    with pytest.raises(StalePlanError) as excinfo:
        store.write([WorkspaceWrite.upsert(acme)], expected_serial=0, audit=_audit(1))
    assert CANARY not in str(excinfo.value)


def test_migrations_are_idempotent(backend: Backend, master_key: MasterKey) -> None:
    with backend.open(master_key) as first:
        version = first.schema_version()
        _write(first, workspace("acme"))
    for _ in range(3):
        with backend.open(master_key) as again:
            assert again.schema_version() == version
            assert set(again.read_state().workspaces) == {"acme"}


def test_secret_fields_with_unusual_values_round_trip(store: Store) -> None:
    odd = Secret("ключ-🔑-" + CANARY + "\x00tail")
    ws = Workspace(
        "odd",
        providers={"openai": ProviderConfig("openai", "gpt-4o", secrets={"api_key": odd})},
        enabled="openai",
    )
    _write(store, ws)
    got = store.read_state().workspaces["odd"].workspace.providers["openai"].secrets["api_key"]
    assert got.reveal() == odd.reveal()


def _poke(backend: Backend, sql: str, value: str) -> None:
    """Run one raw UPDATE (one ``?`` parameter) on the store, bypassing its interface."""
    if backend.name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql, (value,))
        conn.close()
        return
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as pg:
        pg.execute(sql.replace("?", "%s").encode(), (value,))


# (table.column, the row's name in the message, (value on SQLite, value on PostgreSQL)):
# PostgreSQL's jsonb refuses text that is not JSON, so its values are valid JSON of the
# wrong shape.
MALFORMED = [
    ("provider_configs.settings", "provider 'openai' of workspace 'acme'", ("not json", '"x"')),
    ("provider_configs.settings", "provider 'openai' of workspace 'acme'", ("[1]", "[1]")),
    ("provider_configs.settings", "provider 'openai' of workspace 'acme'", ('{"a": 1}',) * 2),
    ("workspaces.notify", "workspace 'acme'", ("garbage", '"garbage"')),
    ("workspaces.notify", "workspace 'acme'", ('["ops@acme.example", 7]', '{"to": "x"}')),
]


@pytest.mark.parametrize(("column", "row", "values"), MALFORMED)
def test_a_malformed_row_makes_its_workspace_unreadable_and_no_other(
    backend: Backend, store: Store, column: str, row: str, values: tuple[str, str]
) -> None:
    _write(store, workspace("acme"), workspace("beta"))
    table, col = column.split(".")
    key = "workspace" if table == "provider_configs" else "name"
    value = values[0] if backend.name == "sqlite" else values[1]
    _poke(backend, f"UPDATE {table} SET {col} = ? WHERE {key} = 'acme'", value)  # noqa: S608
    state = store.read_state()
    assert set(state.workspaces) == {"beta"}
    assert set(state.unreadable) == {"acme"}
    bad = state.unreadable["acme"]
    assert row in bad.problem
    assert f"{col} column" in bad.problem
    assert value not in bad.problem
    assert "beta" not in bad.problem
    assert bad.enabled == "openai"  # the plain column still says it


def _sql(backend: Backend, sql: str, *params: object) -> None:
    """Run one raw statement (``?`` parameters) on the store, bypassing its interface."""
    if backend.name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql, params)
        conn.close()
        return
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as pg:
        pg.execute(sql.replace("?", "%s").encode(), params)


def _ciphertext(store: Store, backend: Backend, name: str) -> bytes:
    if backend.name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"))
        row = conn.execute(
            "SELECT ciphertext FROM provider_secrets WHERE workspace = ?", (name,)
        ).fetchone()
        conn.close()
        return bytes(row[0])
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as pg:
        found = pg.execute(
            "SELECT ciphertext FROM provider_secrets WHERE workspace = %s", (name,)
        ).fetchone()
    assert found is not None
    return bytes(found[0])


def _flip_ciphertext(store: Store, backend: Backend) -> None:
    ct = bytearray(_ciphertext(store, backend, "acme"))
    ct[3] ^= 0x40
    _sql(backend, "UPDATE provider_secrets SET ciphertext = ? WHERE workspace = 'acme'", bytes(ct))


def _copy_from_beta(store: Store, backend: Backend) -> None:
    # A ciphertext that decrypts fine, but is bound (additional data) to another row.
    _sql(
        backend,
        "UPDATE provider_secrets SET nonce = (SELECT nonce FROM provider_secrets WHERE"
        " workspace = 'beta'), ciphertext = (SELECT ciphertext FROM provider_secrets WHERE"
        " workspace = 'beta') WHERE workspace = 'acme'",
    )


def _foreign_key_id(store: Store, backend: Backend) -> None:
    _sql(backend, "UPDATE provider_secrets SET key_id = ? WHERE workspace = 'acme'", "0" * 16)


def _short_nonce(store: Store, backend: Backend) -> None:
    _sql(backend, "UPDATE provider_secrets SET nonce = ? WHERE workspace = 'acme'", b"\x01")


DAMAGE = {
    "flipped ciphertext": (_flip_ciphertext, "does not decrypt"),
    "ciphertext copied from another workspace": (_copy_from_beta, "does not decrypt"),
    "key id of another master key": (_foreign_key_id, "master key this store does not use"),
    "nonce of the wrong length": (_short_nonce, "does not decrypt"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_secret_that_does_not_decrypt_makes_its_workspace_unreadable_and_no_other(
    backend: Backend, store: Store, master_key: MasterKey, damage: str
) -> None:
    acme_key, beta_key = f"{CANARY}-acme-1c2d", f"{CANARY}-beta-9e8f"
    _write(store, workspace("acme", key=acme_key), workspace("beta", key=beta_key))
    poke, expected = DAMAGE[damage]
    poke(store, backend)
    with backend.open(master_key) as reader:  # a fresh reader, as a new process would be
        state = reader.read_state()
    beta = state.workspaces["beta"].workspace.providers["openai"].secrets["api_key"]
    assert beta.reveal() == beta_key
    assert set(state.unreadable) == {"acme"}
    bad = state.unreadable["acme"]
    assert expected in bad.problem
    assert "'api_key' of provider 'openai' in workspace 'acme'" in bad.problem
    assert bad.notify == ("ops@acme.example",)
    assert CANARY not in repr(state.unreadable) + repr(state)
    # Rewriting the workspace (as apply does) repairs it.
    _write(store, workspace("acme", key=acme_key))
    state = store.read_state()
    assert state.unreadable == {}
    assert state.workspaces["acme"].workspace.providers["openai"].secrets["api_key"].reveal() == (
        acme_key
    )


def test_the_wrong_master_key_is_still_an_error_for_the_whole_store(
    backend: Backend, store: Store
) -> None:
    _write(store, workspace("acme"), workspace("beta"))
    with backend.open(MasterKey.generate()) as wrong, pytest.raises(MasterKeyError):
        wrong.read_state()


def test_rotation_refuses_a_store_with_an_unreadable_workspace(
    backend: Backend, store: Store
) -> None:
    _write(store, workspace("acme"), workspace("beta"))
    _flip_ciphertext(store, backend)
    serial = store.serial()
    with pytest.raises(StoreError, match=r"cannot rotate the master key.*acme"):
        store.rotate_master_key(MasterKey.generate(), who="ops")
    assert store.serial() == serial
    assert set(store.read_state().unreadable) == {"acme"}
