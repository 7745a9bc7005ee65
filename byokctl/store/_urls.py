"""Store URLs: the default, and the form of one that is safe to print.

A leaf module (it imports nothing of ours) so that the registry and every backend can
use it without importing one another.
"""

from __future__ import annotations

import re

DEFAULT_STORE_URL = "sqlite:///.byok/state.db"


def safe_url(url: str) -> str:
    """The URL with any ``user:password@`` part and ``password=`` parameter masked."""
    masked = re.sub(r"//[^/@]*@", "//***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.IGNORECASE)
