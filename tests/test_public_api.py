"""The public surface is exactly what we mean it to be."""

from __future__ import annotations

import json

import byokctl
from byokctl import resolver
from byokctl.catalog import FEATURES, PROVIDERS
from byokctl.config.schema import load_schema, schema_path
from byokctl.model import ProviderConfig, Secret, Workspace


def test_exported_names() -> None:
    assert sorted(byokctl.__all__) == sorted(
        ["NEO", "ByokError", "ProviderConfig", "Secret", "Workspace", "__version__"]
    )


def test_secret_never_shows_its_value() -> None:
    s = Secret("sk-model-canary-123456")
    ws = Workspace(
        name="a",
        enabled="openai",
        providers={"openai": ProviderConfig("openai", "gpt-4o", secrets={"api_key": s})},
    )
    for text in (repr(s), str(s), repr(ws), f"{ws}"):
        assert "canary" not in text
    assert s == Secret("sk-model-canary-123456")
    assert s.reveal() == "sk-model-canary-123456"


def test_catalog_and_schema_agree() -> None:
    schema = load_schema()
    defs = schema["$defs"]
    assert defs["providerId"]["enum"] == list(PROVIDERS)
    providers = schema["properties"]["spec"]["properties"]["providers"]["properties"]
    assert list(providers) == list(PROVIDERS)
    for pid, spec in PROVIDERS.items():
        d = defs[pid]
        required_secrets = () if spec.key_optional else spec.secret_fields
        assert set(d["required"]) == {"model", *spec.required_settings, *required_secrets}, pid
        assert set(d["properties"]) == {
            "model",
            "models",
            *spec.settings,
            *spec.mapping_settings,
            *spec.secret_fields,
        }, pid
        for name in spec.mapping_settings:
            assert d["properties"][name]["type"] == "object", pid
        assert d["additionalProperties"] is False
        assert d["properties"]["models"] == {"$ref": "#/$defs/featureModels"}, pid
    assert schema["$defs"]["featureModels"]["additionalProperties"] == {"$ref": "#/$defs/model"}
    # The feature ids validate checks models' keys against are the resolver's.
    assert FEATURES == resolver.FEATURES == ("assist", "summarize", "auto_reply")


def test_schema_is_the_top_level_file() -> None:
    # In a source checkout the schema is read from schemas/, never from a copy.
    assert schema_path().parent.name == "schemas"
    assert json.loads(schema_path().read_text())["$schema"].endswith("2020-12/schema")
