"""The values the resolver hands out: features, costs, reasons and the :class:`Route`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from byokctl.catalog import FEATURES, mapping_setting
from byokctl.model import NEO, UNAVAILABLE, Secret

#: ``FEATURES`` lives in the catalog (the config rules read it too); named here as before.
__all__ = ["FEATURES", "ProviderResponse", "Route", "canonical_feature", "chargeable"]

#: Spellings accepted for a feature besides its id (SPEC §8 writes "auto-reply").
FEATURE_ALIASES: Final[Mapping[str, str]] = MappingProxyType({"auto-reply": "auto_reply"})

#: Credits an action costs on the workspace's own provider (SPEC §1 rule 7).
BYOK_COST: Final = 1
#: Credits an action costs on Neo, per feature, unless the operator configures others.
#: Neo pays for its own model, so it costs more than BYOK; auto-replies run on every
#: incoming ticket with a longer prompt, summaries are the shortest.
DEFAULT_NEO_COSTS: Final[Mapping[str, int]] = MappingProxyType(
    {"assist": 3, "summarize": 2, "auto_reply": 5}
)

# Reasons (``Route.reason``); failures append the outcome, e.g. ``provider_failed:invalid_key``.
BYOK: Final = "byok"
NO_PROVIDER_ENABLED: Final = "no_provider_enabled"
UNKNOWN_WORKSPACE: Final = "unknown_workspace"
PROVIDER_FAILED: Final = "provider_failed"
CIRCUIT_OPEN: Final = "circuit_open"
CIRCUIT_PROBE: Final = "circuit_probe"
#: The store could not be read for longer than the resolver's ``max_staleness``.
STORE_UNAVAILABLE: Final = "store_unavailable"
#: The workspace's rows in the store do not decode or decrypt (the others are served).
STORE_ERROR: Final = "store_error"
#: The enabled provider has no API key in the store (written outside byokctl).
MISSING_CREDENTIALS: Final = "provider_failed:missing_credentials"
#: ``spec.fallback.neo: false`` and the provider cannot serve: ``fallback_disabled:<outcome>``
#: (``fallback_disabled:no_provider_enabled`` when nothing is enabled). Route ``unavailable``.
FALLBACK_DISABLED: Final = "fallback_disabled"
#: The workspace's Neo credit cap (``spec.fallback.max_neo_credits``) is spent for its window.
NEO_CAP_REACHED: Final = "neo_cap_reached"


#: A workspace name (the schema's slug): only such unknown names are charged to the ledger.
_SLUG: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def chargeable(workspace: object) -> bool:
    """Whether an unknown workspace name may go to the ledger: only a valid slug can."""
    return isinstance(workspace, str) and _SLUG.fullmatch(workspace) is not None


def canonical_feature(feature: str) -> str:
    """The feature's canonical id; :class:`ValueError` for an unknown one."""
    name = FEATURE_ALIASES.get(feature, feature)
    if name not in FEATURES:
        raise ValueError(f"unknown AI feature {feature!r}; use one of: {', '.join(FEATURES)}")
    return name


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """Where one AI action goes, why, and what it costs.

    ``provider`` is a provider id, ``"neo"``, or ``"unavailable"`` (``spec.fallback``
    forbids Neo or its cap is spent: cost 0, no model, no credentials; the application
    shows "AI unavailable"). ``credentials`` holds the decrypted
    secret fields as :class:`~byokctl.model.Secret` values; they never appear in
    ``repr``/``str``, and :meth:`api_key` is the one place that reveals the key.
    ``settings`` are the provider's other fields (Azure: ``api_version``,
    ``deployment``). ``probe`` marks the one request a half-open breaker lets through.
    """

    workspace: str
    feature: str
    provider: str
    model: str
    base_url: str | None
    reason: str
    cost: int
    settings: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    fingerprint: str | None = field(default=None, repr=False)
    probe: bool = False

    @property
    def is_neo(self) -> bool:
        """Whether Neo serves this action."""
        return self.provider == NEO

    @property
    def is_unavailable(self) -> bool:
        """Whether no AI serves this action (policy forbids Neo, or its cap is spent)."""
        return self.provider == UNAVAILABLE

    @property
    def headers(self) -> dict[str, str]:
        """The extra headers to send (``openai_compatible``'s ``headers``; else none).

        ``settings`` holds them flattened as ``headers.NAME``; this is ``{NAME: value}``.
        """
        return mapping_setting(self.settings, "headers")

    def api_key(self) -> str | None:
        """The plaintext API key (``None`` on Neo). Call it only where the request is made."""
        secret = self.credentials.get("api_key")
        return None if secret is None else secret.reveal()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: everything but the credentials."""
        return {
            "workspace": self.workspace,
            "feature": self.feature,
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "settings": dict(self.settings),
            "reason": self.reason,
            "cost": self.cost,
            "probe": self.probe,
        }

    def __str__(self) -> str:
        unit = "credit" if self.cost == 1 else "credits"
        return (
            f"{self.workspace}/{self.feature} -> {self.provider} {self.model} "
            f"({self.reason}, {self.cost} {unit})"
        )


@dataclass(frozen=True)
class ProviderResponse:
    """A provider's HTTP answer to report: status, headers and body (classified by body)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
