"""Low-balance notices: which "running low" e-mail of an episode was claimed and sent.

One row per episode of a workspace's provider and credentials (table
``low_balance_notices``, schema version 6). The claim is one ``INSERT … ON CONFLICT DO
NOTHING``: of many probes on many hosts that see the same low balance at once exactly
one inserts, and only it sends. A claim is a lease (``claimed_until``): a sender that
fails releases it (the next probe tries again), one that crashed loses it when the
lease runs out. The row stays while the episode lasts (``sent_at``: nothing more is
sent) and is deleted when a probe sees the balance recover, so the next drop is a new
episode; rows of other credentials are deleted by the next claim (new credentials, new
episode). SQL both dialects agree on, ``?`` marks; the caller's clock.
"""

from __future__ import annotations

from typing import Final

from ._database import Database, Tx, stamp

_INSERT: Final = (
    "INSERT INTO low_balance_notices (workspace, provider, credential_fingerprint,"
    " claimed_at, claimed_until, attempts) VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING"
)
_RECLAIM: Final = (
    "UPDATE low_balance_notices SET claimed_at = ?, claimed_until = ?, attempts = attempts + 1"
    " WHERE workspace = ? AND provider = ? AND credential_fingerprint = ? AND sent_at IS NULL"
    " AND (claimed_until IS NULL OR claimed_until <= ?)"
)
_SENT: Final = (
    "UPDATE low_balance_notices SET sent_at = ?, claimed_until = NULL, error = NULL"
    " WHERE workspace = ? AND provider = ? AND credential_fingerprint = ?"
)
_RELEASE: Final = (
    "UPDATE low_balance_notices SET claimed_until = NULL, error = ?"
    " WHERE workspace = ? AND provider = ? AND credential_fingerprint = ? AND sent_at IS NULL"
)


def claim(db: Database, tx: Tx, key: tuple[str, str, str], *, now: float, lease: float) -> bool:
    """Become the one sender of this episode's e-mail for ``lease`` seconds (see the module)."""
    workspace, provider, _ = key
    # Other credentials' rows are other (ended) episodes; the lock keeps two claims of
    # one provider from deleting each other's rows in different orders (PostgreSQL).
    db.serialize(tx, f"low_balance\0{workspace}\0{provider}")
    tx.execute(
        "DELETE FROM low_balance_notices WHERE workspace = ? AND provider = ?"
        " AND credential_fingerprint <> ?",
        key,
    )
    at, until = stamp(now), stamp(now + lease)
    if tx.execute(_INSERT, (*key, at, until)) == 1:
        return True
    return tx.execute(_RECLAIM, (at, until, *key, at)) == 1


def sent(tx: Tx, key: tuple[str, str, str], *, now: float) -> None:
    """Record that the claimed e-mail went out: nothing more until the episode ends."""
    tx.execute(_SENT, (stamp(now), *key))


def release(tx: Tx, key: tuple[str, str, str], error: str) -> None:
    """Give the claim back after a failed send: the next probe may claim it at once."""
    tx.execute(_RELEASE, (error[:500], *key))


def end(tx: Tx, workspace: str, provider: str) -> bool:
    """The balance recovered: forget the provider's notices (the next drop e-mails again)."""
    return (
        tx.execute(
            "DELETE FROM low_balance_notices WHERE workspace = ? AND provider = ?",
            (workspace, provider),
        )
        > 0
    )
