"""Benchmark: ``byokctl validate`` against ``check-jsonschema`` on the same workspace files.

Claim (issue 13, raising issue 2's 1x): byokctl validates at least 4x as many files per
second as ``check-jsonschema --schemafile schemas/workspace.schema.json`` while checking
more (the schema, plus the rules beyond it, encryption status, duplicate names, hardened
YAML), and its peak memory at 10,000 files is at most 120 MiB.

The script generates N realistic SOPS-shaped workspace files (``api_key`` values are
``ENC[AES256_GCM,…]`` strings and each file has a ``sops:`` metadata block, as real sops
writes them; validate needs no key, so no real encryption is done), then times both
tools as subprocesses on the same files, start-up included, and prints files/second and
the ratio. Run it from anywhere::

    /tmp/venv/bin/python benchmarks/validate.py               # N = 1,000 and 10,000
    /tmp/venv/bin/python benchmarks/validate.py --sizes 200 --runs 1
"""

from __future__ import annotations

import argparse
import base64
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import Row, report, run_measured

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "workspace.schema.json"
RECIPIENT = "age155vmmayf92ftc3enefp9u8nyfc5gk33672f0r4kfm2dav3jfhf5qp9kc6x"

#: Provider id → (models to pick from, extra non-secret settings).
PROVIDERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "openai": (("gpt-4o", "gpt-4o-mini", "gpt-4.1"), {}),
    "gemini": (("gemini-2.0-flash", "gemini-1.5-pro"), {}),
    "anthropic": (("claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022"), {}),
    "azure_openai": (
        ("gpt-4o", "gpt-4"),
        {"api_version": '"2024-06-01"', "deployment": "gpt4o-prod"},
    ),
    "xai": (("grok-3", "grok-3-mini"), {}),
    "deepseek": (("deepseek-chat", "deepseek-reasoner"), {}),
}


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n)).decode()


def _enc(rng: random.Random, plaintext_len: int) -> str:
    """A value shaped like sops's: random data, a 32-byte IV, a 16-byte tag."""
    return (
        f"ENC[AES256_GCM,data:{_b64(rng, plaintext_len)},iv:{_b64(rng, 32)},"
        f"tag:{_b64(rng, 16)},type:str]"
    )


def workspace_file(i: int, rng: random.Random) -> str:
    """One valid, realistic, SOPS-shaped workspace file."""
    name = f"tenant-{i:06d}"
    chosen = rng.sample(sorted(PROVIDERS), rng.randint(1, 4))
    enabled = rng.choice([*chosen, None])
    lines = [
        "# yaml-language-server: $schema=../schemas/workspace.schema.json",
        "apiVersion: byok/v1",
        "kind: Workspace",
        "metadata:",
        f"    name: {name}",
        "    notify:",
        f"        - ops@{name}.example",
        f"        - helpdesk-admins@{name}.example",
        "spec:",
    ]
    if enabled:
        lines.append(f"    enabled: {enabled}")
    lines.append("    providers:")
    for provider in chosen:
        models, settings = PROVIDERS[provider]
        lines += [f"        {provider}:", f"            model: {rng.choice(models)}"]
        if provider == "azure_openai":
            lines.append(f"            endpoint: https://{name}.openai.azure.com")
        lines += [f"            {key}: {value}" for key, value in settings.items()]
        lines.append(f"            api_key: {_enc(rng, 40)}")
    armor = "\n".join(f"            {_b64(rng, 48)}" for _ in range(5))
    lines += [
        "sops:",
        "    age:",
        f"        - recipient: {RECIPIENT}",
        "          enc: |",
        "            -----BEGIN AGE ENCRYPTED FILE-----",
        armor,
        "            -----END AGE ENCRYPTED FILE-----",
        '    lastmodified: "2026-11-27T14:00:25Z"',
        f"    mac: {_enc(rng, 64)}",
        "    encrypted_regex: ^api_key$",
        "    version: 3.11.0",
    ]
    return "\n".join(lines) + "\n"


def generate(directory: Path, n: int, seed: int = 2) -> list[str]:
    """Write ``n`` workspace files into ``directory``; their names, relative to it."""
    rng = random.Random(seed)
    names = []
    for i in range(n):
        name = f"tenant-{i:06d}.yaml"
        (directory / name).write_text(workspace_file(i, rng), encoding="utf-8")
        names.append(name)
    return names


def tool(name: str) -> str:
    """The console script next to this interpreter (the venv), else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"benchmark: {name} is not installed")
    return found


@dataclass(frozen=True)
class Timing:
    tool: str
    files: int
    runs: list[float]
    #: The largest peak resident memory of the runs, in MiB.
    peak_mib: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def files_per_second(self) -> float:
        return self.files / self.median


def time_command(label: str, argv: Sequence[str], cwd: Path, files: int, runs: int) -> Timing:
    """Run ``argv`` ``runs`` times; every run must succeed (all files are valid)."""
    seconds = []
    peak = 0.0
    for _ in range(runs):
        done = run_measured(argv, cwd=cwd)
        seconds.append(done.seconds)
        peak = max(peak, done.peak_mib)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"benchmark: {label} failed (exit {done.returncode}):\n{tail}")
    return Timing(label, files, seconds, peak)


def run(sizes: Sequence[int], runs: int) -> list[tuple[Timing, Timing]]:
    """Generate, time both tools per size, and print one table."""
    byokctl, check = tool("byokctl"), tool("check-jsonschema")
    print("claim: byokctl validate >= 4x check-jsonschema in files/s; peak <= 120 MiB at 10k")
    print(f"{'files':>7} {'tool':<17} {'median s':>9} {'best s':>8} {'files/s':>9} {'peak MiB':>9}")
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="byok-bench-") as tmp:
            root = Path(tmp)
            names = generate(root, n)
            # byokctl is given the directory, as a pipeline would run it (discovery included);
            # check-jsonschema takes file names only.
            ours = time_command("byokctl validate", [byokctl, "validate", "."], root, n, runs)
            theirs = time_command(
                "check-jsonschema",
                [check, "--schemafile", str(SCHEMA), *names],
                root,
                n,
                runs,
            )
        for t in (ours, theirs):
            print(
                f"{n:>7,} {t.tool:<17} {t.median:>9.2f} {min(t.runs):>8.2f} "
                f"{t.files_per_second:>9,.0f} {t.peak_mib:>9.0f}"
            )
        ratio = ours.files_per_second / theirs.files_per_second
        print(f"{n:>7,} ratio byokctl/check-jsonschema: {ratio:.2f}x")
        results.append((ours, theirs))
        rows = [
            Row(
                f"validate {n:,} files",
                f"check-jsonschema {theirs.files_per_second:,.0f} files/s",
                f"{ours.files_per_second:,.0f} files/s",
                f"{ratio:.1f}x",
                ">= 4x",
                ratio >= 4,
            )
        ]
        if n >= 10_000:
            rows.append(
                Row(
                    f"validate {n:,} peak memory",
                    f"check-jsonschema {theirs.peak_mib:.0f} MiB",
                    f"{ours.peak_mib:.0f} MiB",
                    f"{ours.peak_mib / theirs.peak_mib:.2f}x",
                    "<= 120 MiB",
                    ours.peak_mib <= 120,
                )
            )
        report(rows)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the median counts")
    args = parser.parse_args(argv)
    run(args.sizes, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
