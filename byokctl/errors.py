"""The exceptions byokctl raises.

Every error a user can cause or fix is a :class:`ByokError`; the CLI's one error boundary
turns it into a one-line message and exit code 1. Anything else is a bug: the boundary
writes a crash log and exits with :data:`EXIT_CRASH`.

No message ever contains a secret: errors are built from paths, names and rule ids,
never from decrypted values.

::

    ByokError                      a user-facing failure (exit 1)
    ├── ConfigError                workspace files that cannot be loaded or are invalid
    ├── SopsError                  SOPS decryption and encryption
    │   ├── NotSopsFileError       the file has no SOPS metadata
    │   ├── NoIdentityError        no age identity found where sops looks
    │   ├── IdentityMismatchError  no identity matches the file's recipients
    │   ├── MacMismatchError       the file changed after it was encrypted
    │   ├── DecryptionError        a value does not decrypt
    │   └── SopsBinaryError        the sops binary is missing or failed
    ├── StoreError                 the live store
    │   ├── LockHeldError          another run holds the lock
    │   ├── StalePlanError         a saved plan no longer matches the store or files
    │   └── MasterKeyError         missing or wrong master key
    ├── VerificationError          verification could not run, or a check refuses the change
    ├── MailError                  a failure e-mail could not be sent
    └── AIUnavailableError         policy leaves an AI action no route (spec.fallback)
"""

from __future__ import annotations

#: Exit code for an unexpected error (a bug); a crash log was written.
EXIT_CRASH = 3
#: Exit code for Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130


class ByokError(Exception):
    """A failure the user can understand and fix. ``hint`` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(ByokError):
    """Workspace files that cannot be loaded, or that break the rules."""


class SopsError(ByokError):
    """Reading or writing a SOPS file failed."""


class NotSopsFileError(SopsError):
    """The file carries no SOPS metadata."""


class NoIdentityError(SopsError):
    """No age identity was found in any of the places sops looks."""


class IdentityMismatchError(SopsError):
    """Identities were found, but none matches the file's recipients."""


class MacMismatchError(SopsError):
    """The file's MAC does not match its content: it changed after encryption."""


class DecryptionError(SopsError):
    """A value could not be decrypted."""


class SopsBinaryError(SopsError):
    """The sops binary is needed but missing, or it reported an error."""


class StoreError(ByokError):
    """The live store failed or refused an operation."""


class LockHeldError(StoreError):
    """Another run holds the store's lock."""


class StalePlanError(StoreError):
    """A saved plan no longer matches the live state or its source files."""


class MasterKeyError(StoreError):
    """The master key for encryption at rest is missing or wrong."""


class VerificationError(ByokError):
    """Credential verification could not run, or a provider's check refuses the change."""


class MailError(ByokError):
    """A failure e-mail could not be handed to the mail server (retried later)."""


class AIUnavailableError(ByokError):
    """No AI serves this action: the workspace's ``spec.fallback`` forbids Neo or its cap is spent.

    ``reason`` is the route's (``fallback_disabled:<outcome>``, ``neo_cap_reached``); the
    application shows "AI unavailable" instead of the feature's answer.
    """

    def __init__(self, workspace: str, feature: str, reason: str) -> None:
        super().__init__(
            f"AI is unavailable for {workspace}/{feature} ({reason})",
            hint="see docs/policy.md: spec.fallback decides when Neo may serve a workspace",
        )
        self.workspace = workspace
        self.feature = feature
        self.reason = reason
