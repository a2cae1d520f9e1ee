"""The fuzz run of `make test` (`make fuzz`): the release binary with the
default model on a free port, a fresh database and an API key, then

1. schemathesis against its /openapi.json: a bounded number of generated
   requests per operation, failing on any 5xx and on any answer that breaks
   the documented status codes, content types or schemas;
2. server_fns.py: a seeded random fuzzer over the server functions, failing
   on any 5xx.

Both seeds are printed; FUZZ_SEED replays a run, FUZZ_EXAMPLES and
FUZZ_REQUESTS change the sizes. The server's log is kept when a part fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WICK = ROOT / "target/release/wick"
MODEL = ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = int(os.environ.get("FUZZ_SEED", "18"))
# Examples per operation for schemathesis' fuzzing phase (its coverage phase adds its own).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "500"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, key: str | None = None, timeout: float = 5):
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def wait_ready(base: str, wick: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if wick.poll() is not None:
            sys.exit(f"wick exited with {wick.returncode} before it was ready:\n{log.read_text()[-3000:]}")
        try:
            get_json(f"{base}/health", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"wick was not ready after 180 s:\n{log.read_text()[-3000:]}")


def part(name: str, command: list[str], cwd: Path, env: dict | None = None) -> tuple[bool, float]:
    print(f"\n=== {name}\n$ {' '.join(command)}", flush=True)
    started = time.monotonic()
    code = subprocess.call(command, cwd=cwd, env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - started
    print(f"=== {name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {elapsed:.0f} s", flush=True)
    return code == 0, elapsed


def main() -> int:
    for path, hint in [(WICK, "make build (cargo xtask build)"), (MODEL, "make model")]:
        if not path.exists():
            sys.exit(f"{path} is missing: {hint}")
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        sys.exit(f"schemathesis is not installed beside {sys.executable}: make fuzz installs it in .venv-fuzz")

    workdir = Path(tempfile.mkdtemp(prefix="wick-fuzz-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = secrets.token_hex(16)
    log = workdir / "wick.log"
    env = {
        **os.environ,
        "WICK_ADDR": f"127.0.0.1:{port}",
        "WICK_DATABASE_URL": f"sqlite://{workdir}/wick.db",
        "WICK_MODEL": str(MODEL),
        "WICK_MAX_NEW_TOKENS": "8",
        "WICK_API_KEY": key,
        "WICK_LOG": "info",
    }
    env.pop("WICK_MODELS", None)
    started = time.monotonic()
    with open(log, "wb") as log_file:
        wick = subprocess.Popen([str(WICK)], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    results = []
    try:
        wait_ready(base, wick, log)
        model = get_json(f"{base}/v1/models", key)["data"][0]["id"]
        print(f"wick at {base} (model {model}, database {workdir}/wick.db); seed {SEED}", flush=True)
        results.append(part("schemathesis: /openapi.json", [
            str(st), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{base}/openapi.json",
            "--header", f"Authorization: Bearer {key}",
            "--checks", CHECKS,
            "--max-examples", str(EXAMPLES),
            "--seed", str(SEED),
            "--workers", "2",
            "--request-timeout", "60",
            "--generation-database", "none",
            "--no-color",
            # Show the requests as sent (the key is a throwaway one).
            "--output-sanitize", "false",
        ], cwd=workdir, env={"WICK_FUZZ_MODEL": model}))  # its cache stays out of the repository
        results.append(part("server functions", [
            sys.executable, str(HERE / "server_fns.py"), "--url", base, "--binary", str(WICK),
            "--seed", str(SEED), "--requests", str(REQUESTS),
        ], cwd=ROOT))
    finally:
        wick.send_signal(signal.SIGTERM)
        try:
            wick.wait(timeout=30)
        except subprocess.TimeoutExpired:
            wick.kill()
            wick.wait()
            results.append((False, 0.0))
            print("wick did not stop within 30 s of SIGTERM")
    text = log.read_text(errors="replace")
    if "panicked" in text:
        results.append((False, 0.0))
        print("wick panicked during the run (see its log)")
    failed = sum(1 for ok, _ in results if not ok)
    print(f"\nthe fuzz run took {time.monotonic() - started:.0f} s (seed {SEED})")
    if failed:
        print(f"wick's log: {log}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"fuzz: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
