#!/usr/bin/env bash
# Builds llama.cpp, the reference engine for Wick's fidelity data and benchmarks,
# from the copy vendored in PyPI's llama-cpp-python source distribution (PyPI is
# reachable where GitHub is not). Prints the directory holding the binaries.
# Not needed by `make run` or `make test`: the tests read recorded data.
set -euo pipefail

VERSION="0.3.36"
ROOT="${WICK_LLAMA_CPP_DIR:-$HOME/.cache/wick/llama.cpp-$VERSION}"
BIN="$ROOT/src/vendor/llama.cpp/BUILD/bin"
TARGETS=(llama-bench llama-simple llama-tokenize llama-server llama-cli llama-eval-callback)

if [ -x "$BIN/llama-tokenize" ] && [ -x "$BIN/llama-bench" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$ROOT"
if [ ! -x "$ROOT/venv/bin/cmake" ]; then
  python3 -m venv "$ROOT/venv"
  "$ROOT/venv/bin/pip" install --quiet cmake ninja >&2
fi
if [ ! -d "$ROOT/src" ]; then
  "$ROOT/venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$ROOT/dl" >&2
  mkdir -p "$ROOT/src"
  tar -xzf "$ROOT"/dl/llama_cpp_python-*.tar.gz -C "$ROOT/src" --strip-components=1
fi
cd "$ROOT/src/vendor/llama.cpp"
PATH="$ROOT/venv/bin:$PATH" cmake -S . -B BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF >&2
for t in "${TARGETS[@]}"; do
  PATH="$ROOT/venv/bin:$PATH" cmake --build BUILD -j"$(nproc)" --target "$t" >&2 || echo "note: target $t did not build" >&2
done
echo "$BIN"
