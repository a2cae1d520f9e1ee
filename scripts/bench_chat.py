#!/usr/bin/env python3
"""`make bench-chat`: what a chat user gets, against the engine alone.

Runs, side by side in one go on the same model, prompt, seed and thread count:
  * `wick generate` (the engine and nothing else): time to first token after the
    model is loaded, and its decode tokens/s;
  * a `wick` server on loopback, driven like the browser does: the send server
    function, then the reply's SSE stream. Time to first token is measured from
    the POST to the first `token` event; decode tokens/s from the first token to
    the `end` event (completion tokens counted by the server);
  * then C conversations sent at once (they queue for the one model worker),
    each streamed to its end.
Medians of R runs. Only the standard library is used.

Usage: scripts/bench_chat.py [--wick target/release/wick] [-n 128] [-r 3] [-c 3] [--threads 2]
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def engine_alone(args, prompt):
    """(ttft seconds, decode tok/s, completion tokens) of `wick generate`."""
    cmd = [args.wick, "generate", "--model", args.model, "--prompt", prompt, "--temperature", "0.6",
           "--top-p", "0.9", "--seed", "7", "--max-new-tokens", str(args.n), "--threads", str(args.threads)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    loaded_line = p.stderr.readline().decode()
    if "loaded in" not in loaded_line:
        sys.exit(f"wick generate: {loaded_line}{p.stderr.read().decode()}")
    asked = time.perf_counter()
    p.stdout.read(1)
    ttft = time.perf_counter() - asked
    p.stdout.read()
    err = p.stderr.read().decode()
    p.wait()
    m = re.search(r"decode: (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\)", err)
    if not m:
        sys.exit(f"wick generate printed no speeds:\n{err}")
    return ttft, float(m.group(2)), int(m.group(1))


class Server:
    def __init__(self, args):
        self.dir = tempfile.TemporaryDirectory()
        env = dict(os.environ, WICK_LOG="warn", WICK_SEED="7", WICK_MAX_NEW_TOKENS=str(args.n),
                   WICK_THREADS=str(args.threads), WICK_TEMPERATURE="0.6", WICK_MODEL=args.model,
                   WICK_DATABASE_URL=f"sqlite://{self.dir.name}/bench.db", WICK_ADDR="127.0.0.1:0",
                   WICK_SITE_ROOT=os.path.join(ROOT, "target", "site"))
        self.proc = subprocess.Popen([args.wick], stdout=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode().strip()
        url = urllib.parse.urlparse(line.rsplit(" ", 1)[-1])
        self.host, self.port = url.hostname, url.port
        # The send function's address carries a build hash: read it from the composer form.
        page = self.request("GET", "/")[1].decode()
        self.send_url = re.search(r'action="(/api/send_message[^"]*)"', page).group(1)

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def chat_once(self, prompt):
        """(ttft seconds, decode tok/s, completion tokens, finish) of one reply seen over SSE."""
        started = time.perf_counter()
        r, data = self.request("POST", self.send_url, urllib.parse.urlencode({"content": prompt}),
                               {"Content-Type": "application/x-www-form-urlencoded"})
        if r.status != 200:
            sys.exit(f"send failed: {r.status} {data[:300]!r}")
        cookie = r.getheader("Set-Cookie").split(";", 1)[0]
        message = json.loads(data)["message_id"]
        c = http.client.HTTPConnection(self.host, self.port)
        c.request("GET", f"/api/messages/{message}/stream", headers={"Cookie": cookie})
        stream = c.getresponse()
        first = None
        event = None
        while True:
            line = stream.readline()
            if not line:
                sys.exit("the stream ended without an end event")
            line = line.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "token" and first is None:
                first = time.perf_counter()
            elif line.startswith("data:") and event in ("end", "failed"):
                ended = time.perf_counter()
                end = json.loads(line[5:])
                break
        c.close()
        if event == "failed":
            sys.exit(f"the reply failed: {end}")
        tokens = end["completion_tokens"]
        return first - started, tokens / (ended - first), tokens, end["finish_reason"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.dir.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wick", default=os.path.join(ROOT, "target", "release", "wick"))
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=128, help="max new tokens per reply")
    ap.add_argument("-r", type=int, default=3, help="runs of each")
    ap.add_argument("-c", type=int, default=3, help="conversations sent at once")
    args = ap.parse_args()

    server = Server(args)
    try:
        alone, sse = [], []
        for _ in range(args.r):  # alternate, so both see the same machine
            alone.append(engine_alone(args, PROMPT))
            sse.append(server.chat_once(PROMPT))
        results = [None] * args.c

        def one(i):
            results[i] = server.chat_once(PROMPT)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.c)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.stop()

    med = lambda rows, i: statistics.median(r[i] for r in rows)
    a_ttft, a_tps = med(alone, 0), med(alone, 1)
    s_ttft, s_tps = med(sse, 0), med(sse, 1)
    print(f"prompt: {PROMPT!r}; up to {args.n} new tokens; {args.threads} threads; medians of {args.r}")
    print()
    print("| path | time to first token | decode tok/s |")
    print("|---|---|---|")
    print(f"| `wick generate` (engine alone) | {a_ttft * 1000:.0f} ms | {a_tps:.1f} |")
    print(f"| chat over SSE (HTTP + SQLite + stream) | {s_ttft * 1000:.0f} ms | {s_tps:.1f} |")
    print(f"| **SSE / engine** | **{s_ttft / a_ttft:.2f}×** (time) | **{s_tps / a_tps:.2f}×** |")
    print()
    print(f"runs: engine ttft {[round(r[0] * 1000) for r in alone]} ms, tok/s {[round(r[1], 1) for r in alone]}; "
          f"SSE ttft {[round(r[0] * 1000) for r in sse]} ms, tok/s {[round(r[1], 1) for r in sse]}, "
          f"tokens {[r[2] for r in sse]}")
    total = sum(r[2] for r in results)
    print(f"{args.c} conversations at once: all ended ({', '.join(r[3] for r in results)}); "
          f"time to first token {', '.join(f'{r[0]:.1f} s' for r in sorted(results))} (they queue); "
          f"{total} tokens in {wall:.1f} s = {total / wall:.1f} tok/s overall")


if __name__ == "__main__":
    main()
