"""The rules the schema cannot say, checked on one parsed file (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from byokctl.catalog import (
    FEATURES,
    PROVIDERS,
    SECRET_FIELDS,
    ProviderSpec,
    closest_features,
    header_problem,
)
from byokctl.config import patterns
from byokctl.config.schema import SchemaFinding
from byokctl.config.yamlsource import Path
from byokctl.sopsformat import is_encrypted_value, is_sops_document


def is_encrypted(value: object) -> bool:
    """Whether ``value`` is an encrypted value, exactly as sops reads one."""
    return is_encrypted_value(value)


def has_sops_metadata(document: Mapping[str, Any]) -> bool:
    """Whether the document is a SOPS file (the same test decryption uses)."""
    return is_sops_document(document)


def is_secret_path(path: Path) -> bool:
    """Whether ``path`` is a secret field or inside one."""
    return any(part in SECRET_FIELDS for part in path)


def encrypted_paths(value: Any, path: Path = ()) -> Iterator[Path]:
    """Paths of every encrypted value, the ``sops`` metadata excluded."""
    found: list[Path] = []
    _collect_encrypted(value, path, found)
    return iter(found)


def _collect_encrypted(value: Any, path: Path, found: list[Path]) -> None:
    # One list filled by plain recursion: nested generators cost a frame per level per leaf,
    # and every file is walked this way several times.
    if isinstance(value, Mapping):
        for key, child in value.items():
            if not path and key == "sops":
                continue
            _collect_encrypted(child, (*path, key), found)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _collect_encrypted(child, (*path, i), found)
    elif is_encrypted(value):
        found.append(path)


def plain_strings(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every non-secret, unencrypted string value with its path, the ``sops`` metadata excluded."""
    found: list[tuple[Path, str]] = []
    _collect_plain(value, path, found)
    return iter(found)


def _collect_plain(value: Any, path: Path, found: list[tuple[Path, str]]) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            if (not path and key == "sops") or key in SECRET_FIELDS:
                continue
            _collect_plain(child, (*path, key), found)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _collect_plain(child, (*path, i), found)
    elif isinstance(value, str) and not is_encrypted(value):
        found.append((path, value))


def control_characters(document: Mapping[str, Any]) -> Iterator[SchemaFinding]:
    """A finding for every non-secret string holding a control or invisible character."""
    for path, value in plain_strings(document):
        found = patterns.first_control_character(value)
        if found is not None:
            index, name = found
            yield SchemaFinding(
                path,
                "control-character",
                f"{'.'.join(map(str, path))} holds {name} at character {index + 1} "
                f"({value!r}): control and invisible characters are not allowed",
                "remove it; if the value is quoted, check for an escape such as \\n or \\t",
            )


def _providers(document: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = document.get("spec")
    providers = spec.get("providers") if isinstance(spec, Mapping) else None
    return providers if isinstance(providers, Mapping) else {}


def secret_paths(document: Mapping[str, Any]) -> Iterator[Path]:
    """Paths of every secret field present in the document."""
    for provider, config in _providers(document).items():
        if isinstance(config, Mapping):
            for name in SECRET_FIELDS:
                if name in config:
                    yield ("spec", "providers", provider, name)


def check(
    document: Mapping[str, Any], *, sops_command: Callable[[], str]
) -> Iterator[SchemaFinding]:
    """Findings for the rules beyond the schema. Severity is decided by the caller by rule id.

    ``sops_command`` says how to encrypt this file; it is called only when needed.
    """
    yield from control_characters(document)
    spec = document.get("spec")
    providers = _providers(document)
    enabled = spec.get("enabled") if isinstance(spec, Mapping) else None
    if isinstance(enabled, str) and enabled in PROVIDERS and enabled not in providers:
        # (an unknown provider id is the schema's finding; say it once)
        configured = ", ".join(sorted(providers)) or "none"
        yield SchemaFinding(
            ("spec", "enabled"),
            "enabled-not-configured",
            f"enabled names {enabled!r}, which is not configured under spec.providers "
            f"(configured: {configured})",
            f"add spec.providers.{enabled}, or set enabled to one of the configured providers "
            "(or remove it to let Neo power the workspace)",
        )

    fallback = spec.get("fallback") if isinstance(spec, Mapping) else None
    if isinstance(fallback, Mapping) and fallback.get("neo") is False:
        for unused in ("max_neo_credits", "per"):
            if unused in fallback:
                yield SchemaFinding(
                    ("spec", "fallback", unused),
                    "fallback-unused",
                    f"fallback.{unused} has no effect: fallback.neo is false, so Neo never "
                    "serves this workspace",
                    f"remove fallback.{unused}, or set fallback.neo to true to cap Neo instead",
                )

    secrets = list(secret_paths(document))
    if secrets and not has_sops_metadata(document):
        yield SchemaFinding(
            secrets[0],
            "file-not-encrypted",
            "the file holds API keys but is not SOPS-encrypted: plaintext keys must never be "
            "committed",
            f"encrypt it in place: {sops_command()} (sops applies the repository's .sops.yaml); "
            "if the key was pushed already, rotate it",
        )
    else:
        for path in secrets:
            value = _get(document, path)
            if isinstance(value, Mapping | list):
                yield SchemaFinding(
                    path,
                    "secret-not-a-string",
                    f"{'.'.join(map(str, path))} must be a single string (the API key)",
                    "write the key as one string value, then encrypt the file",
                )
            elif not is_encrypted(value):
                yield SchemaFinding(
                    path,
                    "secret-not-encrypted",
                    f"{'.'.join(map(str, path))} is not encrypted, though the file is a SOPS file",
                    "make .sops.yaml's encrypted_regex cover api_key, then re-encrypt: "
                    f"{sops_command()}; if the key was pushed already, rotate it",
                )

    for provider, config in providers.items():
        spec_ = PROVIDERS.get(provider)
        if spec_ is None or not isinstance(config, Mapping):
            continue
        yield from _compatible_findings(provider, spec_.key_optional, config)
        yield from _unknown_model(
            spec_, config.get("model"), ("spec", "providers", provider, "model")
        )
        models = config.get("models")
        if isinstance(models, Mapping):
            for feature, feature_model in models.items():
                path = ("spec", "providers", provider, "models", feature)
                if isinstance(feature, str) and feature not in FEATURES:
                    close = closest_features(feature)
                    yield SchemaFinding(
                        path,
                        "unknown-feature",
                        f"models names the feature {feature!r}, which byokctl does not know: "
                        "no action will use this model",
                        f"did you mean {', '.join(close)}?"
                        if close
                        else f"the features are: {', '.join(FEATURES)}",
                    )
                yield from _unknown_model(spec_, feature_model, path)

    if isinstance(enabled, str):
        metadata = document.get("metadata")
        notify = metadata.get("notify") if isinstance(metadata, Mapping) else None
        if not notify:
            yield SchemaFinding(
                ("metadata",),
                "notify-empty",
                "a provider is enabled but metadata.notify is empty: nobody will be e-mailed "
                "when it fails and Neo takes over",
                "add the workspace admins' addresses to metadata.notify",
            )

    hidden = [p for p in encrypted_paths(document) if not is_secret_path(p)]
    if hidden:
        shown = ", ".join(".".join(map(str, p)) for p in hidden[:3])
        more = f" and {len(hidden) - 3} more" if len(hidden) > 3 else ""
        yield SchemaFinding(
            hidden[0],
            "non-secret-encrypted",
            f"values that are not secrets are encrypted ({shown}{more}): validate cannot check "
            "them without a key, and reviewers cannot read them",
            "encrypt only the keys: set encrypted_regex: ^api_key$ in .sops.yaml and re-encrypt",
        )


def _unknown_model(spec: ProviderSpec, model: object, path: Path) -> Iterator[SchemaFinding]:
    """A warning for a model id the catalog does not know, with the closest known ids.

    None for a provider without a known list (plan asks the server: its model list or one
    token).
    """
    if (
        spec.free_form_models
        or not isinstance(model, str)
        or is_encrypted(model)
        or model in spec.known_models
    ):
        return
    close = spec.closest_models(model)
    hint = (
        f"closest known: {', '.join(close)}" if close else f"known: {', '.join(spec.known_models)}"
    )
    yield SchemaFinding(
        path,
        "unknown-model",
        f"model {model!r} is not among the {spec.display_name} models byokctl knows; "
        "plan asks the provider whether the key can use it",
        hint,
    )


def _compatible_findings(
    provider: str, key_optional: bool, config: Mapping[str, Any]
) -> Iterator[SchemaFinding]:
    """An optional key left out (a notice), and the ``headers`` a workspace may not set."""
    if key_optional and "api_key" not in config:
        yield SchemaFinding(
            ("spec", "providers", provider),
            "no-api-key",
            f"spec.providers.{provider} has no api_key: requests go to the server without "
            "authentication",
            "fine for a server without auth; otherwise add api_key and encrypt the file",
        )
    headers = config.get("headers")
    if not isinstance(headers, Mapping):
        return
    seen: dict[str, str] = {}
    for name in headers:
        if not isinstance(name, str):
            continue
        path = ("spec", "providers", provider, "headers", name)
        problem = header_problem(name)
        if problem is not None:
            yield SchemaFinding(
                path,
                "credential-header",
                f"header {problem}",
                "remove it from headers",
            )
        first = seen.setdefault(name.lower(), name)
        if first != name:
            yield SchemaFinding(
                path,
                "duplicate-header",
                f"header {name} is also given as {first}: header names are case-insensitive",
                "keep one of them",
            )


def _get(document: Mapping[str, Any], path: Path) -> Any:
    value: Any = document
    for part in path:
        value = value[part]
    return value


#: Rules whose findings are warnings; every other rule is an error.
WARNING_RULES: Final = frozenset(
    {
        "unknown-model",
        "unknown-feature",
        "fallback-unused",
        "notify-empty",
        "non-secret-encrypted",
        "no-api-key",
    }
)
