"""The seven providers byokctl knows: one place for ids, fields and known models.

The JSON Schema (``schemas/workspace.schema.json``) is the authority on structure; a test
pins that it and this catalog agree. ``known_models`` only feed hints ("did you mean");
the provider's own list-models answer decides, at plan time, whether a model is usable.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class ProviderSpec:
    """What byokctl knows about one provider."""

    id: str
    display_name: str
    #: Non-secret fields a configuration must have besides ``model``.
    required_settings: tuple[str, ...]
    #: Non-secret fields a configuration may have.
    optional_settings: tuple[str, ...]
    #: Fields that hold secrets and must be SOPS-encrypted in git.
    secret_fields: tuple[str, ...]
    known_models: tuple[str, ...]
    #: The public API's base URL; ``None`` when each workspace supplies its endpoint.
    default_base_url: str | None
    #: Where ``byokctl sandbox`` serves this provider, under its one root URL.
    sandbox_path: str
    #: The non-secret field that holds a workspace-supplied endpoint (untrusted: the
    #: SSRF guard applies), or ``None`` when the provider has a public base URL.
    endpoint_setting: str | None = None
    #: Whether ``api_key`` may be left out (servers without auth).
    key_optional: bool = False
    #: Non-secret fields whose value is a mapping of strings (``headers``); settings hold
    #: them flattened as ``NAME.KEY`` (:func:`flatten_settings`).
    mapping_settings: tuple[str, ...] = ()
    #: Whether the model is free-form (no known list: the server's own list decides).
    free_form_models: bool = False

    @property
    def base_url_env(self) -> str:
        """The environment variable an operator sets to override the base URL."""
        return f"BYOK_{self.id.upper()}_BASE_URL"

    @property
    def settings(self) -> tuple[str, ...]:
        return self.required_settings + self.optional_settings

    def closest_models(self, model: str, n: int = 3) -> list[str]:
        """Known model ids closest to ``model``, best first."""
        return difflib.get_close_matches(model, self.known_models, n=n, cutoff=0.4)


_SPECS = (
    ProviderSpec(
        id="openai",
        display_name="OpenAI",
        required_settings=(),
        optional_settings=("organization", "project"),
        secret_fields=("api_key",),
        known_models=(
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4-turbo",
            "gpt-4",
            "gpt-3.5-turbo",
            "o1",
            "o3-mini",
        ),
        default_base_url="https://api.openai.com/v1",
        sandbox_path="/openai/v1",
    ),
    ProviderSpec(
        id="gemini",
        display_name="Google Gemini",
        required_settings=(),
        optional_settings=(),
        secret_fields=("api_key",),
        known_models=(
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.0-flash",
            "gemini-2.0-flash-lite",
            "gemini-1.5-pro",
            "gemini-1.5-flash",
        ),
        default_base_url="https://generativelanguage.googleapis.com/v1beta",
        sandbox_path="/gemini/v1beta",
    ),
    ProviderSpec(
        id="anthropic",
        display_name="Anthropic",
        required_settings=(),
        optional_settings=(),
        secret_fields=("api_key",),
        known_models=(
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20240620",
            "claude-3-5-haiku-20241022",
            "claude-3-opus-20240229",
            "claude-3-7-sonnet-20250219",
            "claude-sonnet-4-20250514",
            "claude-opus-4-20250514",
        ),
        default_base_url="https://api.anthropic.com",
        sandbox_path="/anthropic",
    ),
    ProviderSpec(
        id="azure_openai",
        display_name="Azure OpenAI",
        required_settings=("endpoint", "api_version", "deployment"),
        optional_settings=(),
        secret_fields=("api_key",),
        known_models=("gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-4-turbo", "gpt-35-turbo"),
        default_base_url=None,
        sandbox_path="/azure",
        endpoint_setting="endpoint",
    ),
    ProviderSpec(
        id="xai",
        display_name="Grok (xAI)",
        required_settings=(),
        optional_settings=(),
        secret_fields=("api_key",),
        known_models=("grok-4", "grok-3", "grok-3-mini", "grok-2", "grok-2-vision"),
        default_base_url="https://api.x.ai/v1",
        sandbox_path="/xai/v1",
    ),
    ProviderSpec(
        id="deepseek",
        display_name="DeepSeek",
        required_settings=(),
        optional_settings=("low_balance",),
        secret_fields=("api_key",),
        known_models=("deepseek-chat", "deepseek-reasoner"),
        default_base_url="https://api.deepseek.com",
        sandbox_path="/deepseek",
    ),
    ProviderSpec(
        id="openai_compatible",
        display_name="OpenAI-compatible",
        required_settings=("base_url",),
        optional_settings=("name", "id"),
        secret_fields=("api_key",),
        known_models=(),
        default_base_url=None,
        sandbox_path="/compatible/v1",
        endpoint_setting="base_url",
        key_optional=True,
        mapping_settings=("headers",),
        free_form_models=True,
    ),
)

#: Every provider, by id, in a stable order.
PROVIDERS: Final[Mapping[str, ProviderSpec]] = MappingProxyType({s.id: s for s in _SPECS})

#: The root URL of ``byokctl sandbox``; set, it points every provider there.
SANDBOX_URL_ENV: Final = "BYOK_SANDBOX_URL"


def operator_base_url(provider: str, env: Mapping[str, str]) -> str | None:
    """The operator's base URL for ``provider``, if any.

    ``BYOK_<P>_BASE_URL``, else the sandbox's (``BYOK_SANDBOX_URL`` + the provider's
    path). Callers fall back to the catalog default or the workspace's endpoint.
    """
    spec = PROVIDERS[provider]
    override = env.get(spec.base_url_env, "").strip()
    if override:
        return override.rstrip("/")
    sandbox = env.get(SANDBOX_URL_ENV, "").strip()
    if sandbox:
        return sandbox.rstrip("/") + spec.sandbox_path
    return None


#: The AI features, by their canonical id: the keys of ``spec.providers.<p>.models``.
FEATURES: Final = ("assist", "summarize", "auto_reply")


def closest_features(feature: str) -> list[str]:
    """Feature ids closest to ``feature`` (``auto-reply`` finds ``auto_reply``), best first."""
    return difflib.get_close_matches(feature.replace("-", "_"), FEATURES, n=3, cutoff=0.6)


#: Every secret field name of any provider.
SECRET_FIELDS: Final[frozenset[str]] = frozenset(f for s in _SPECS for f in s.secret_fields)


#: Header names that carry credentials: a workspace may not write them in plaintext
#: ``headers`` (the key goes in the SOPS-encrypted ``api_key``, sent as ``Authorization:
#: Bearer``). Names holding one of :data:`CREDENTIAL_HEADER_WORDS` count too.
CREDENTIAL_HEADERS: Final[frozenset[str]] = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-goog-api-key"}
)
#: Substrings that mark a header name as a credential (``X-Auth-Token``, ``X-Secret``).
CREDENTIAL_HEADER_WORDS: Final = ("auth", "token", "secret", "password", "apikey", "api-key")
#: Header names the HTTP client owns (framing, routing): never a workspace's.
CLIENT_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "expect",
    }
)


def header_problem(name: str) -> str | None:
    """Why ``name`` may not be a plaintext header of a workspace, or ``None``."""
    lowered = name.lower()
    if lowered in CLIENT_HEADERS:
        return f"{name} is set by the HTTP client, not by a workspace"
    if lowered in CREDENTIAL_HEADERS or any(w in lowered for w in CREDENTIAL_HEADER_WORDS):
        return (
            f"{name} carries credentials, which must never be written in plaintext; "
            "put the key in api_key (SOPS-encrypted, sent as Authorization: Bearer)"
        )
    return None


def flatten_settings(spec: ProviderSpec, config: Mapping[str, object]) -> dict[str, str]:
    """A provider document's non-secret fields as settings: strings, mappings flattened.

    ``headers: {X-Title: Acme}`` becomes ``{"headers.X-Title": "Acme"}``, so the store,
    the diff and the renderers see one string per header (and diff them one by one).
    """
    settings = {k: str(config[k]) for k in spec.settings if k in config}
    for name in spec.mapping_settings:
        value = config.get(name)
        if isinstance(value, Mapping):
            settings.update({f"{name}.{k}": str(v) for k, v in value.items()})
    return settings


def document_settings(spec: ProviderSpec, settings: Mapping[str, str]) -> dict[str, object]:
    """The inverse of :func:`flatten_settings`: settings as a workspace file spells them."""
    out: dict[str, object] = {}
    for key, value in settings.items():
        name, dot, rest = key.partition(".")
        if dot and name in spec.mapping_settings:
            group = out.setdefault(name, {})
            assert isinstance(group, dict)
            group[rest] = value
        else:
            out[key] = value
    return out


def mapping_setting(settings: Mapping[str, str], name: str) -> dict[str, str]:
    """The mapping setting ``name`` (e.g. ``headers``) of flattened ``settings``."""
    prefix = f"{name}."
    return {k[len(prefix) :]: v for k, v in settings.items() if k.startswith(prefix)}
