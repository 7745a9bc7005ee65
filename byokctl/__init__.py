"""byokctl: Bring-Your-Own-Key AI provider configuration as code."""

from __future__ import annotations

from byokctl.errors import ByokError
from byokctl.model import NEO, ProviderConfig, Secret, Workspace

__version__ = "0.1.0"

__all__ = [
    "NEO",
    "ByokError",
    "ProviderConfig",
    "Secret",
    "Workspace",
    "__version__",
]
