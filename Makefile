# Wick's two commands: `make run` serves the chat, `make test` runs every test.
# Each step installs only what is missing, so a second run goes straight to work.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
WICK := target/release/wick
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test build model gemma3 ops-tools soak crash clients fuzz fuzz-tools bench bench-chat bench-serve bench-history test-llama-server tools wasm-target npm-deps chromium rust-tests e2e check

## run: install what is missing, build in release mode and serve at http://127.0.0.1:3000
##      (WICK_ADDR and WICK_DATABASE_URL change the address and the database)
run: build model
	exec $(WICK)

## test: the Rust tests, the fuzz run and the browser tests, on one release build
test: build model gemma3 chromium ops-tools clients fuzz-tools
	@$(LLAMA_SERVER_NOTE)
	$(MAKE) --no-print-directory rust-tests fuzz e2e

# The release server and the browser's files (xtask/src/main.rs); a step whose outputs are newer than
# its inputs is skipped, so with nothing changed this takes a few seconds.
build: tools
	cargo xtask build

rust-tests:
	cargo test --release --workspace

e2e:
	npx playwright test --config end2end/playwright.config.ts

## clients: the OpenAI and Hugging Face client libraries the API tests use, in .venv-clients
CLIENTS_VENV := .venv-clients
clients: $(CLIENTS_VENV)/.installed
$(CLIENTS_VENV)/.installed: end2end/clients/requirements.txt
	python3 -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install -q --disable-pip-version-check -r end2end/clients/requirements.txt
	touch $@

## fuzz: schemathesis against /openapi.json and a seeded fuzzer over the server functions, run
##       against the release build (needs `make build model`; FUZZ_SEED=N replays a run)
FUZZ_VENV := .venv-fuzz
fuzz: fuzz-tools
	$(FUZZ_VENV)/bin/python end2end/fuzz/run.py

fuzz-tools: $(FUZZ_VENV)/.installed
$(FUZZ_VENV)/.installed: end2end/fuzz/requirements.txt
	python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install -q --disable-pip-version-check -r end2end/fuzz/requirements.txt
	touch $@

## model: fetch and verify the default model (SmolLM2-135M-Instruct, Q4_1 GGUF)
model:
	./scripts/fetch-model.sh $(MODEL)

## gemma3: fetch and verify Gemma 3 270M (Q4_K_M GGUF, ~250 MB), the second architecture the tests run
gemma3:
	./scripts/fetch-gemma3.sh models/gemma-3-270m-q4_k_m.gguf

tools: wasm-target npm-deps

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown


# wasm-opt (binaryen), esbuild and Playwright come from npm; Playwright's own browser download is skipped.
npm-deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's Chromium for the browser tests…"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

## ops-tools: Prometheus' promtool (checks /metrics), nginx (the reverse-proxy test) and systemd-analyze
##           (checks the unit file): Debian packages
ops-tools:
	@{ command -v promtool && command -v nginx && command -v systemd-analyze && command -v openssl; } >/dev/null || { \
	  echo "Installing Debian's prometheus (for promtool), nginx, systemd and openssl for the operations tests…"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus nginx systemd openssl; }

## bench: Wick's engine against llama.cpp (built once from PyPI's llama-cpp-python sources, ~12 min), then
##        the remote-backend test and the serving benchmark (bench-serve)
bench: model
	cargo build --release -p server --bin wick
	python3 scripts/bench.py --llama-bin "$$(./scripts/build-llama-cpp.sh)"
	$(MAKE) --no-print-directory test-llama-server
	$(MAKE) --no-print-directory bench-serve
	$(MAKE) --no-print-directory page-weight
	$(MAKE) --no-print-directory bench-history

## page-weight: what a conversation page's first load downloads (wasm + JS + CSS, gzip), against its 250 KB budget
page-weight: build
	python3 scripts/page_weight.py

# server/tests/remote.rs chats through llama.cpp's server only where it has been built; say so up front
# (the test's own message is captured by cargo test).
LLAMA_SERVER_BIN := $(HOME)/.cache/wick/llama.cpp-0.3.36/src/vendor/llama.cpp/BUILD/bin/llama-server
LLAMA_SERVER_NOTE := if [ -x "$(LLAMA_SERVER_BIN)" ]; then echo "llama.cpp's server is built: the remote tests chat through it too"; \
  else echo "note: llama.cpp's server is not built, so the remote tests skip it (make test-llama-server builds and runs it)"; fi

## test-llama-server: chat through llama.cpp's own server as a remote (OpenAI-compatible) backend
test-llama-server: model
	WICK_LLAMA_SERVER="$$(./scripts/build-llama-cpp.sh)/llama-server" \
	  cargo test --release -p server --test remote llama_cpp -- --nocapture

## bench-history: a 2 x 1,000,000-message history in SQLite: the sidebar, search, export and import
##                served by the release binary (figures in BENCHMARKS.md)
bench-history: build model
	python3 scripts/bench_history.py

## bench-chat: time to first token and tokens/s seen by an SSE client against `wick generate`
bench-chat: build model
	python3 scripts/bench_chat.py

## bench-serve: Wick's OpenAI API against llama.cpp's llama-server (4 sequences at once each, same GGUF and
##              threads): one stream, four at once, a 10-turn conversation, 8 users chatting for 2 minutes
##              (time to first token p50/p95) and peak RSS (about 10 minutes)
bench-serve: build model
	python3 scripts/bench_serve.py --llama-server "$$(./scripts/build-llama-cpp.sh)/llama-server"

## soak: 20 people chatting and 200 more stream readers for 10 minutes against the release binary and the
##       real model: errors, time to first token p50/p95, memory at start, peak and end (RELIABILITY.md)
soak: build model
	python3 scripts/soak.py

## crash: 20 kill -9 at random moments while replies stream, restarting each time: nothing stored may be
##        lost, every reply ends done, interrupted or error with its text, integrity_check ok (RELIABILITY.md)
crash: build model
	python3 scripts/crash.py

## check: formatting and lints (the server build and the browser's wasm build), and the
##        browser build's dependency tree, which must not reach the database or the model
HYDRATE := -p app --no-default-features --features hydrate --target wasm32-unknown-unknown
BROWSER_FORBIDDEN := sqlx|sqlx-core|candle-core|candle-transformers|inference|wick-core|tokenizers
check: wasm-target
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy $(HYDRATE) --lib -- -D warnings
	@bad="$$(cargo tree $(HYDRATE) -e normal --prefix none | awk '{print $$1}' | { grep -xE '$(BROWSER_FORBIDDEN)' || true; } | sort -u)"; \
	  if [ -n "$$bad" ]; then echo "the browser build depends on: $$bad"; exit 1; fi; \
	  echo "the browser build's dependencies hold no database, model or server crate"
