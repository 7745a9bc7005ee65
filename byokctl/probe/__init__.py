"""Key-health probes: check each enabled provider's key before a user's action fails.

:func:`probe` asks the resolver what to probe (every workspace's enabled provider, with
its credentials' fingerprint), checks each with verification's cheapest call (the same
adapters, retries, cache and classification as ``plan``: OpenAI, xAI, DeepSeek and
compatible ``GET /models``, Anthropic ``GET /v1/models``, Gemini ``GET models``, Azure's
deployment, plus xAI's ``GET /api-key`` and DeepSeek's ``GET /user/balance``), at most
``parallelism`` at a time, and records each verdict through
:meth:`~byokctl.resolver.Resolver.record_probe`: a sticky failure opens the episode (Neo
takes over, one e-mail) before any user's action meets it. ``docs/probe.md`` has the
command, the schedules and the JSON.
"""

from __future__ import annotations

from byokctl.probe._duration import parse_duration
from byokctl.probe._run import ProbeReport, ProbeResult, probe

__all__ = ["ProbeReport", "ProbeResult", "parse_duration", "probe"]
