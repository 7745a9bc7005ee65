"""``byokctl models FILE PROVIDER``: the models a workspace's key can use.

This is the settings page's model dropdown: the provider's own list for the key, not the
catalog's guesses. The configured model is marked, and the exit code says whether the key
works (0) or not (1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, TextIO

from byokctl.catalog import PROVIDERS
from byokctl.commands._inputs import read_desired
from byokctl.errors import ConfigError
from byokctl.verify import Outcome, VerifyCache, list_models

Format = Literal["text", "json"]


def models(file: Path, provider: str, *, fmt: Format, out: TextIO, err: TextIO) -> int:
    """List the models ``provider``'s key in the workspace ``file`` can use."""
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {provider!r}",
            hint=f"one of: {', '.join(PROVIDERS)}",
        )
    desired = read_desired([str(file)], err=err, refused="the provider was not asked")
    if len(desired.workspaces) != 1:
        raise ConfigError(
            f"{file} holds {len(desired.workspaces)} workspaces; give one workspace file"
        )
    workspace = next(iter(desired.workspaces.values()))
    config = workspace.providers.get(provider)
    if config is None:
        configured = ", ".join(workspace.providers) or "none"
        raise ConfigError(
            f"workspace {workspace.name!r} does not configure {provider} (configured: {configured})"
        )
    result = list_models(config, cache=VerifyCache.default(os.environ), env=os.environ)
    outcome = result.classification.outcome
    # The key works when the list came back, even if the configured model is not in it.
    works = outcome in (Outcome.OK, Outcome.MODEL_NOT_AVAILABLE) and bool(result.models)
    if fmt == "json":
        doc = {
            "workspace": workspace.name,
            "provider": provider,
            "outcome": outcome.value,
            "detail": result.classification.detail,
            "model": config.model,
            "model_available": config.model in result.models,
            "models": sorted(result.models),
        }
        print(json.dumps(doc, indent=2), file=out)
        return 0 if works else 1
    if not works:
        print(
            f"byokctl: {workspace.name} {provider}: {outcome.value}: "
            f"{result.classification.detail}",
            file=err,
        )
        return 1
    for model in sorted(result.models):
        mark = "  (configured)" if model == config.model else ""
        print(f"{model}{mark}", file=out)
    if config.model not in result.models:
        print(
            f"byokctl: warning: the configured model {config.model} is not in this list",
            file=err,
        )
    return 0
