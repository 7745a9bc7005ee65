"""Native in-process SOPS decryption versus the sops binary, per file.

Claim (issue 3, SPEC §4): a plan over thousands of workspaces must not spawn a process
per file; native decryption should be at least 10x faster per file than the binary.

Generates N workspace files (default 500), encrypts them with the real sops to a
throwaway age key, then decrypts each file natively (one shared Identities, as a plan
does) and with the sops binary called directly (``SOPS_DISABLE_VERSION_CHECK=1``, not
via the Python wrapper script), in pairs: native then binary on the same file, file after
file (A B A B), so a swing in the machine's load hits both sides of a pair alike. Prints
both per-file medians, and the median of the per-file ratios (the paired median, which
the README quotes).

    python benchmarks/sops_decrypt.py [--files 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyrage

from byokctl.sops import decrypt_file, find_sops_binary, load_identities

sys.path.insert(0, str(Path(__file__).parent))
from _report import Row, report

PROVIDERS = ("openai", "anthropic", "gemini", "xai", "deepseek")


def workspace(index: int) -> str:
    enabled = PROVIDERS[index % len(PROVIDERS)]
    providers = "".join(
        f"    {p}:\n      model: model-{p}-{index % 7}\n      api_key: sk-{p}-{index:05d}-bench\n"
        for p in PROVIDERS[: 1 + index % 3]
    )
    return (
        "apiVersion: byok/v1\nkind: Workspace\n"
        f"metadata:\n  name: ws-{index:05d}\n  notify: [ops-{index}@example.com]\n"
        f"spec:\n  enabled: {enabled}\n  providers:\n{providers}"
        "    azure_openai:\n      model: gpt-4\n      endpoint: https://acme.openai.azure.com\n"
        f'      api_version: "2024-06-01"\n      deployment: prod-{index}\n'
        f"      api_key: azure-{index:05d}-bench\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    args = parser.parse_args()

    sops = find_sops_binary()
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "XDG_CONFIG_HOME": str(root / ".config"),
            "SOPS_DISABLE_VERSION_CHECK": "1",
            "SOPS_AGE_KEY": str(identity),
        }
        (root / "ws").mkdir()
        files = [root / "ws" / f"ws-{i:05d}.yaml" for i in range(args.files)]

        def encrypt(index: int) -> None:
            files[index].write_text(workspace(index))
            subprocess.run(
                [str(sops), "encrypt", "--age", recipient, "--encrypted-regex", "^api_key$",
                 "-i", str(files[index])],
                env=env, check=True, capture_output=True,
            )  # fmt: skip

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) * 2) as pool:
            list(pool.map(encrypt, range(args.files)))
        print(f"encrypted {args.files} files with sops in {time.perf_counter() - started:.1f}s")

        identities = load_identities(env)
        decrypt_file(files[0], identities=identities)  # key loading is not per file
        native: list[float] = []
        binary: list[float] = []
        for path in files:
            content = path.read_bytes()
            t0 = time.perf_counter()
            result = decrypt_file(path, identities=identities, content=content)
            native.append(time.perf_counter() - t0)
            if result.via != "native":
                print(f"{path}: served by the binary ({result.fallback_reason})", file=sys.stderr)
                return 1
            t0 = time.perf_counter()
            subprocess.run(
                [str(sops), "decrypt", str(path)], env=env, check=True, capture_output=True
            )
            binary.append(time.perf_counter() - t0)

    native_ms = statistics.median(native) * 1000
    binary_ms = statistics.median(binary) * 1000
    paired = statistics.median(b / n for n, b in zip(native, binary, strict=True))
    print(f"sops binary    {sops}")
    print(f"files          {args.files}, native and binary alternating per file")
    print(f"native median  {native_ms:.3f} ms/file")
    print(f"binary median  {binary_ms:.3f} ms/file")
    print(f"paired median of binary/native per file: {paired:.1f}x  (target >= 10x)")
    report(
        [
            Row(
                "SOPS decrypt per file, native (paired with the binary)",
                f"sops binary {binary_ms:.2f} ms/file",
                f"{native_ms:.3f} ms/file",
                f"{paired:.0f}x (paired median)",
                ">= 10x",
                paired >= 10,
            )
        ]
    )
    return 0 if paired >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
