"""Native in-process SOPS decryption versus the sops binary, per file.

Claim (issue 3, SPEC §4): a plan over thousands of workspaces must not spawn a process
per file; native decryption should be at least 10x faster per file than the binary.

Generates N workspace files (default 500), encrypts them with the real sops to a
throwaway age key, then decrypts every file natively (one shared Identities, as a plan
does) and with the sops binary called directly (``SOPS_DISABLE_VERSION_CHECK=1``, not
via the Python wrapper script). Prints both per-file medians and the ratio.

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
        native: list[float] = []
        for path in files:
            content = path.read_bytes()
            t0 = time.perf_counter()
            result = decrypt_file(path, identities=identities, content=content)
            native.append(time.perf_counter() - t0)
            if result.via != "native":
                print(f"{path}: served by the binary ({result.fallback_reason})", file=sys.stderr)
                return 1

        binary: list[float] = []
        for path in files:
            t0 = time.perf_counter()
            subprocess.run(
                [str(sops), "decrypt", str(path)], env=env, check=True, capture_output=True
            )
            binary.append(time.perf_counter() - t0)

    native_ms = statistics.median(native) * 1000
    binary_ms = statistics.median(binary) * 1000
    print(f"sops binary    {sops}")
    print(f"files          {args.files}")
    first_ms = native[0] * 1000
    print(
        f"native median  {native_ms:.3f} ms/file  (first file, with key loading: {first_ms:.2f} ms)"
    )
    print(f"binary median  {binary_ms:.3f} ms/file")
    print(f"ratio          {binary_ms / native_ms:.1f}x  (target >= 10x)")
    return 0 if binary_ms / native_ms >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
