"""Fixtures for the SOPS suite: throwaway age keys and files made by the real sops.

Every file is produced by the real ``sops`` binary in this test run. The sops calls of a
module run in parallel, once per module, and never see the real home directory: each
call gets an explicit environment whose HOME and XDG_CONFIG_HOME are temporary dirs.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from byokctl.sops import encrypt_file, find_sops_binary

#: Canary plaintexts: they must never show up in a message or a repr.
CANARY = "sk-CANARY-8c1f2e7d9b"
CANARY_2 = "azure-CANARY-44aa19"


@dataclass(frozen=True)
class AgeKey:
    secret: str
    recipient: str


def _new_key() -> AgeKey:
    identity = pyrage.x25519.Identity.generate()
    return AgeKey(str(identity), str(identity.to_public()))


@pytest.fixture(scope="session")
def key1() -> AgeKey:
    return _new_key()


@pytest.fixture(scope="session")
def key2() -> AgeKey:
    return _new_key()


@pytest.fixture(scope="session")
def outsider() -> AgeKey:
    return _new_key()


@pytest.fixture(scope="session")
def sops_bin() -> Path:
    return find_sops_binary()


@pytest.fixture(scope="session")
def empty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no age key anywhere except what ``extra`` adds."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _no_real_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read the user's keys or write to their home."""
    for name in list(os.environ):
        if name.startswith("SOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


def run_sops(
    sops_bin: Path, args: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(sops_bin), *args], env=dict(env), cwd=cwd, capture_output=True, check=False
    )


class SopsOutputLoader(yaml.SafeLoader):
    """PyYAML plus YAML 1.2 floats such as ``1e+20``, which sops (go-yaml) writes bare.

    go-yaml writes infinities as ``.inf``; a bare ``1e400`` is a string it did not quote
    because it is no float64.
    """


def _construct_float(loader: SopsOutputLoader, node: yaml.ScalarNode) -> float | str:
    value = loader.construct_yaml_float(node)
    return node.value if math.isinf(value) and ".inf" not in node.value.lower() else value


SopsOutputLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
SopsOutputLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def sops_decrypt(sops_bin: Path, path: Path, env: Mapping[str, str]) -> list[Any]:
    """The oracle: what ``sops decrypt`` says the file holds, read with PyYAML."""
    done = run_sops(sops_bin, ["decrypt", str(path)], env)
    assert done.returncode == 0, done.stderr.decode()
    return list(yaml.load_all(done.stdout, Loader=SopsOutputLoader))


def first_difference(left: Any, right: Any, path: str = "") -> str | None:
    """Where two decoded documents differ (a path and the types, never the values), or None."""
    if isinstance(left, dict) and isinstance(right, dict):
        if list(left) != list(right):
            return f"{path or '/'}: keys {list(left)} != {list(right)}"
        for key in left:
            found = first_difference(left[key], right[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items != {len(right)}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    # Types too: True == 1 and 2 == 2.0 in Python, but not in what sops prints.
    if type(left) is not type(right) or left != right:
        return f"{path}: {type(left).__name__} != {type(right).__name__}"
    return None


@dataclass(frozen=True)
class Case:
    name: str
    plaintext: str
    flags: tuple[str, ...] = ()
    native: bool = True  # the native path must serve it
    #: Extra creation-rule lines for a .sops.yaml (some options exist only there); the
    #: case is then encrypted through byokctl's encrypt_file.
    rule: str | None = None


def encrypt_cases(
    sops_bin: Path, directory: Path, cases: list[Case], recipients: str, env: Mapping[str, str]
) -> dict[str, Path]:
    """Encrypt each case with the real sops, in parallel; return name -> encrypted file."""

    def one(case: Case) -> tuple[str, Path]:
        if case.rule is not None:
            return case.name, encrypt_with_config(directory / case.name, case, recipients, env)
        source = directory / f"{case.name}.yaml"
        source.write_text(case.plaintext, encoding="utf-8")
        done = run_sops(
            sops_bin,
            ["encrypt", "--age", recipients, *case.flags, "--in-place", str(source)],
            env,
            cwd=directory,
        )
        assert done.returncode == 0, f"{case.name}: {done.stderr.decode()}"
        return case.name, source

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, cases))


def encrypt_with_config(repo: Path, case: Case, recipients: str, env: Mapping[str, str]) -> Path:
    """Write a repo with a .sops.yaml rule and encrypt the case's file in a subfolder."""
    (repo / "workspaces").mkdir(parents=True)
    first, *rest = recipients.split(",")
    lines = (case.rule or "").replace("{key1}", first).replace("{key2}", rest[0] if rest else first)
    keys = "" if "key_groups" in lines else f"    age: {recipients}\n"
    rule = "  - path_regex: workspaces/.*\\.yaml$\n" + keys
    rule += "".join(f"    {line}\n" for line in lines.splitlines())
    (repo / ".sops.yaml").write_text("creation_rules:\n" + rule, encoding="utf-8")
    source = repo / "workspaces" / f"{case.name}.yaml"
    source.write_text(case.plaintext, encoding="utf-8")
    encrypt_file(source, env=env)
    return source
