"""Damage a real store's rows with SQL, the way a bad migration, a manual fix or a bit flip would.

Shared by the resolver and CLI tests of bad-row isolation. Every function works on a
``sqlite:///`` and a ``postgresql://`` store URL alike; ``?`` is the parameter mark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import psycopg


def run_sql(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the store behind ``url``, bypassing byokctl; return its rows."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as pg:
        cur = pg.execute(sql.replace("?", "%s").encode(), params)
        return cur.fetchall() if cur.description else []


def flip_ciphertext(url: str, workspace: str, other: str) -> None:
    """Flip one bit of the workspace's stored API key ciphertext."""
    rows = run_sql(url, "SELECT ciphertext FROM provider_secrets WHERE workspace = ?", workspace)
    ct = bytearray(bytes(rows[0][0]))  # type: ignore[arg-type]
    ct[5] ^= 0x01
    run_sql(
        url, "UPDATE provider_secrets SET ciphertext = ? WHERE workspace = ?", bytes(ct), workspace
    )


def copy_ciphertext(url: str, workspace: str, other: str) -> None:
    """Give the workspace another workspace's (valid) ciphertext: bound to the other row."""
    run_sql(
        url,
        "UPDATE provider_secrets SET nonce = (SELECT nonce FROM provider_secrets WHERE"
        " workspace = ?), ciphertext = (SELECT ciphertext FROM provider_secrets WHERE"
        " workspace = ?) WHERE workspace = ?",
        other,
        other,
        workspace,
    )


def garbage_json(url: str, workspace: str, other: str) -> None:
    """Make the workspace's notify column undecodable (PostgreSQL's jsonb: the wrong shape)."""
    value = "{not json" if url.startswith("sqlite:") else '{"to": 7}'
    cast = "" if url.startswith("sqlite:") else "::jsonb"
    run_sql(url, f"UPDATE workspaces SET notify = ?{cast} WHERE name = ?", value, workspace)  # noqa: S608


def garbage_settings(url: str, workspace: str, other: str) -> None:
    """Make a provider's settings column undecodable (or, on PostgreSQL, the wrong shape)."""
    value = "[[[" if url.startswith("sqlite:") else "[1, 2]"
    cast = "" if url.startswith("sqlite:") else "::jsonb"
    run_sql(
        url,
        f"UPDATE provider_configs SET settings = ?{cast} WHERE workspace = ?",  # noqa: S608
        value,
        workspace,
    )


#: Each way to damage a workspace's rows: ``damage(url, workspace, other_workspace)``.
DAMAGE: dict[str, Callable[[str, str, str], None]] = {
    "flipped-ciphertext": flip_ciphertext,
    "copied-ciphertext": copy_ciphertext,
    "garbage-notify-json": garbage_json,
    "garbage-settings-json": garbage_settings,
}
