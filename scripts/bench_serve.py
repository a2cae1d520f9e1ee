#!/usr/bin/env python3
"""`make bench-serve`: Wick as a shared inference server, against llama.cpp's `llama-server`.

Starts both servers side by side on the same GGUF and thread count, each decoding up to P sequences at
once (`WICK_PARALLEL=P`; `llama-server -np P -cb --cache-prompt`, with its defaults otherwise: continuous
batching and the prompt cache are on by default anyway; with an explicit -np its KV cache is not unified,
so each slot has -c / P tokens), and drives them through one streaming OpenAI client
(`POST /v1/chat/completions`, `stream: true`, `stream_options.include_usage`, parsed from the SSE
`data:` lines), greedy (`temperature: 0`) with `ignore_eos: true` so both do the same work where the
server honours it (llama-server does; Wick's OpenAI route ignores the field, so its replies may end
early: completion tokens are always the server's own count, from the usage chunk, else the content
chunks). Prompts ask for a long story, each request its own subject, the same ones for both servers.

Context: llama-server gets `-c P×C`, i.e. C tokens per slot (default C = 4096); Wick's sequences have the
model's own context (8192 for SmolLM2) but its prompts are capped at WICK_MAX_PROMPT_TOKENS, set to the
same C. Every request of this benchmark fits well within C, so neither runs out of room.

Measured, the servers alternating within each run (which goes first alternates from run to run),
medians of R runs:
  * one stream: time to first token (from sending the request to the first content delta) and decode
    tok/s ((completion tokens - 1) / time from the first to the last content delta); N new tokens;
  * four streams of N tokens sent at once: aggregate tok/s (all completion tokens / wall time from the
    first request to the last stream's end), also as a multiple of the server's own single stream;
  * a 10-turn conversation (each turn resends the whole history: the user's messages and the replies
    that server gave, plus a new message; T new tokens a reply): time to first token of turn 1 and of
    turn 10, and their ratio (a prefix cache keeps it near 1);
  * eight simulated users for S seconds (by default one run per server, not R): each starts after a
    random 0-4 s, thinks a random 1-4 s after each reply (seeded: the same schedule and messages for
    both servers) and chats T-token replies, resending the history, starting a new conversation every
    10 turns; p50 and p95 time to first token over all turns (no turn starts after S seconds; those under
    way then are finished and counted);
  * peak RSS of each server process (VmHWM from /proc/PID/status, after all of the above).
Only the standard library is used.

Usage: scripts/bench_serve.py [--wick target/release/wick] [--llama-server PATH] [--model GGUF]
           [--threads 2] [-r 3] [-n 128] [--users-seconds 120] [--only single,four,conversation,users]
"""
import argparse
import http.client
import json
import math
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
API_KEY = "bench-serve-key"
FIGURES = ("single", "four", "conversation", "users")

WHO = ["a lighthouse keeper", "a retired astronaut", "a young baker", "an old clockmaker", "a ship's cat",
       "a village doctor", "a mapmaker", "a beekeeper", "a night-train conductor", "a museum guard",
       "a violin teacher", "a mountain guide", "a radio operator", "a gardener", "a librarian",
       "a fisherman's daughter"]
WHAT = ["finds a message in a bottle", "hears a strange voice on an old radio",
        "discovers a door that was not there yesterday", "receives a letter written fifty years ago",
        "finds a map hidden under the floorboards", "meets a stranger who already knows her name",
        "loses the key to the town's only bridge", "wakes up to find that the sea has gone",
        "is given a box that must not be opened", "sees a light moving on the hill every night",
        "finds a talking crow in the attic", "inherits a house nobody has entered for years",
        "finds footprints in the snow that lead nowhere", "is asked to deliver a parcel across the mountains",
        "discovers that every clock in town has stopped", "finds a photograph of herself as an old woman"]
WHERE = ["on a windy northern island", "in a city of canals", "in a small desert town", "in a forest village",
         "in a harbour town in winter", "in a valley between two rivers", "in a mountain monastery",
         "in a busy port city"]
FOLLOW_UPS = ["Continue the story.", "What happens next? Keep going.",
              "Describe the weather and the place in more detail, then continue.",
              "Now bring in a new character and continue the story.", "Continue, with more dialogue.",
              "Keep going with the next chapter.", "Tell the next part from another character's view.",
              "Continue: something unexpected happens.", "Go on, and describe what everyone is feeling.",
              "Continue the story where you left off."]


def story(k):
    """The k-th story request: distinct for successive k, the subject changing first."""
    who, what, where = WHO[k % 16], WHAT[(k // 16) % 16], WHERE[(k // 256) % 8]
    return (f"Write a long story about {who} who {what} {where}. Describe the place, the weather and the "
            f"people in rich detail, give the characters names and let them talk to each other. The story "
            f"should be long, with many chapters.")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refused(Exception):
    pass


class Reply:
    __slots__ = ("start", "first", "last", "end", "text", "tokens", "prompt_tokens", "chunks", "usage", "finish")

    @property
    def ttft(self):
        return self.first - self.start

    @property
    def decode_tps(self):
        return (self.tokens - 1) / (self.last - self.first) if self.tokens > 1 and self.last > self.first else 0.0


class Target:
    """One server under test, reached over HTTP on loopback."""

    def __init__(self, name, cmd, env, port, log_dir, address_from_stdout=False):
        self.name, self.cmd, self.env = name, cmd, env
        self.out_path = os.path.join(log_dir, f"{name}.out")
        self.err_path = os.path.join(log_dir, f"{name}.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        self.host, self.port = "127.0.0.1", port
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                self.fail(f"exited with status {self.proc.returncode} while starting")
            if time.monotonic() > deadline:
                self.fail("did not become ready within 300 s")
            if address_from_stdout and self.port is None:
                # Wick prints "Wick is serving the chat at http://ADDR" once it is ready.
                with open(self.out_path) as f:
                    line = f.readline()
                if line.endswith("\n"):
                    url = urllib.parse.urlparse(line.strip().rsplit(" ", 1)[-1])
                    self.host, self.port = url.hostname, url.port
            if self.port is not None:
                try:
                    if self.get("/health")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.2)
        status, models = self.get("/v1/models")
        if status != 200:
            self.fail(f"GET /v1/models answered {status}: {models!r}")
        self.model_id = models["data"][0]["id"]
        self.usage_seen = False  # whether any stream ended with a usage chunk

    def fail(self, why):
        tail = ""
        for path in (self.out_path, self.err_path):
            with open(path, errors="replace") as f:
                tail += f.read()[-3000:]
        self.stop()
        raise SystemExit(f"{self.name} {why}; its output ends with:\n{tail}")

    def headers(self):
        return {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    def get(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            c.request("GET", path, headers=self.headers())
            r = c.getresponse()
            body = r.read()
            try:
                return r.status, json.loads(body)
            except ValueError:
                return r.status, body[:300]
        finally:
            c.close()

    def stream(self, messages, max_tokens, ignore_eos):
        """Streams one chat completion; returns a Reply, or raises Refused."""
        body = {"model": self.model_id, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": max_tokens, "temperature": 0, "seed": 7}
        if ignore_eos:
            body["ignore_eos"] = True
        reply = Reply()
        reply.text, reply.chunks, reply.usage, reply.finish, reply.prompt_tokens = "", 0, None, None, None
        reply.first = None
        reply.start = time.perf_counter()
        c = http.client.HTTPConnection(self.host, self.port, timeout=900)
        try:
            c.request("POST", "/v1/chat/completions", json.dumps(body), self.headers())
            r = c.getresponse()
            if r.status != 200:
                raise Refused(f"{self.name}: HTTP {r.status} {r.read()[:300]!r}")
            while True:
                line = r.readline()
                if not line:
                    raise Refused(f"{self.name}: the stream ended without [DONE]")
                line = line.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                obj = json.loads(data)
                if "error" in obj:
                    raise Refused(f"{self.name}: {obj['error']}")
                for choice in obj.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        now = time.perf_counter()
                        if reply.first is None:
                            reply.first = now
                        reply.last = now
                        reply.chunks += 1
                        reply.text += content
                    if choice.get("finish_reason"):
                        reply.finish = choice["finish_reason"]
                if obj.get("usage"):
                    reply.usage = obj["usage"]
        finally:
            c.close()
        reply.end = time.perf_counter()
        if reply.first is None:
            raise Refused(f"{self.name}: a reply without content (finish {reply.finish})")
        if reply.usage:
            self.usage_seen = True
            reply.tokens = reply.usage["completion_tokens"]
            reply.prompt_tokens = reply.usage.get("prompt_tokens")
        else:
            reply.tokens = reply.chunks
        return reply

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_wick(args, log_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WICK_")}
    env.update(WICK_ADDR="127.0.0.1:0", WICK_DATABASE_URL=f"sqlite://{log_dir}/bench.db", WICK_MODEL=args.model,
               WICK_API_KEY=API_KEY, WICK_THREADS=str(args.threads), WICK_PARALLEL=str(args.parallel),
               WICK_MAX_NEW_TOKENS=str(max(1024, args.n, args.turn_tokens)),
               WICK_MAX_PROMPT_TOKENS=str(args.ctx_per_slot), WICK_QUEUE_DEPTH="64", WICK_REPLIES_PER_USER="64",
               WICK_LOG="warn", WICK_SITE_ROOT=os.path.join(ROOT, "target", "site"))
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("WICK_"))
    return Target("wick", [args.wick], env, None, log_dir, address_from_stdout=True), f"{shown} {args.wick}"


def start_llama(args, log_dir):
    port = free_port()
    cmd = [args.llama_server, "-m", args.model, "-t", str(args.threads), "-np", str(args.parallel),
           "-c", str(args.parallel * args.ctx_per_slot), "-cb", "--cache-prompt", "--host", "127.0.0.1", "--port", str(port)]
    return Target("llama-server", cmd, dict(os.environ), port, log_dir), shlex.join(cmd)


# --- the figures -------------------------------------------------------------------------------------------


def one_stream(t, args, run):
    r = t.stream([{"role": "user", "content": story(run)}], args.n, args.ignore_eos)
    return {"ttft": r.ttft, "tps": r.decode_tps, "tokens": r.tokens, "prompt_tokens": r.prompt_tokens}


def parallel(fns):
    """Runs the functions at once, each on its own thread; returns their results in order."""
    results, errors = [None] * len(fns), []

    def call(i):
        try:
            results[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


def four_streams(t, args, run):
    k0 = 100 + 4 * run
    t0 = time.perf_counter()
    replies = parallel([lambda k=k: t.stream([{"role": "user", "content": story(k)}], args.n, args.ignore_eos)
                        for k in range(k0, k0 + 4)])
    wall = max(r.end for r in replies) - t0
    tokens = sum(r.tokens for r in replies)
    return {"tps": tokens / wall, "tokens": [r.tokens for r in replies], "wall": wall,
            "ttfts": sorted(r.ttft for r in replies)}


def conversation(t, args, run, turns=10):
    messages, ttfts, prompts, tokens = [], [], [], []
    for turn in range(turns):
        messages.append({"role": "user", "content": story(200 + run) if turn == 0 else FOLLOW_UPS[turn % 10]})
        r = t.stream(messages, args.turn_tokens, args.ignore_eos)
        messages.append({"role": "assistant", "content": r.text})
        ttfts.append(r.ttft)
        prompts.append(r.prompt_tokens)
        tokens.append(r.tokens)
    return {"ttft1": ttfts[0], "ttft10": ttfts[-1], "ratio": ttfts[-1] / ttfts[0], "ttfts": ttfts,
            "prompt_tokens": prompts, "tokens": tokens, "chars": sum(len(m["content"]) for m in messages)}


def users(t, args, n_users=8, turns_per_conversation=10):
    deadline = time.perf_counter() + args.users_seconds
    lock = threading.Lock()
    ttfts, refused, tokens, longest = [], [], [0], [0]

    def user(u):
        rng = random.Random(args.seed * 1000 + u)
        time.sleep(rng.uniform(0, 4))
        conversation_no, messages = 0, []
        while time.perf_counter() < deadline:
            turn = len(messages) // 2
            if turn == turns_per_conversation:
                conversation_no, messages, turn = conversation_no + 1, [], 0
            content = story(300 + 64 * u + conversation_no) if turn == 0 else FOLLOW_UPS[rng.randrange(10)]
            messages.append({"role": "user", "content": content})
            try:
                r = t.stream(messages, args.turn_tokens, args.ignore_eos)
            except Refused as e:
                messages.pop()
                with lock:
                    refused.append(str(e))
            else:
                messages.append({"role": "assistant", "content": r.text})
                with lock:
                    ttfts.append(r.ttft)
                    tokens[0] += r.tokens
                    longest[0] = max(longest[0], r.prompt_tokens or 0)
            time.sleep(rng.uniform(1, 4))

    t0 = time.perf_counter()
    parallel([lambda u=u: user(u) for u in range(n_users)])
    wall = time.perf_counter() - t0
    if not ttfts:
        raise SystemExit(f"{t.name}: no user turn was answered ({refused[:3]})")
    return {"p50": percentile(ttfts, 50), "p95": percentile(ttfts, 95), "turns": len(ttfts), "refused": len(refused),
            "refusals": refused[:3], "tokens": tokens[0], "wall": wall, "longest_prompt": longest[0]}


def percentile(xs, p):
    """Nearest-rank percentile."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


# --- the report --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--wick", default=os.path.join(ROOT, "target", "release", "wick"))
    ap.add_argument("--llama-server", help="default: the directory scripts/build-llama-cpp.sh prints, /llama-server")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-r", type=int, default=3, help="runs of each figure (medians)")
    ap.add_argument("-n", type=int, default=128, help="new tokens of the one stream and of each of the four")
    ap.add_argument("--turn-tokens", type=int, default=64, help="new tokens of a conversation's reply")
    ap.add_argument("--parallel", type=int, default=4, help="sequences decoded at once (WICK_PARALLEL, -np)")
    ap.add_argument("--ctx-per-slot", type=int, default=4096, help="context of each llama-server slot; Wick's prompt cap")
    ap.add_argument("--users-seconds", type=float, default=120, help="length of the eight-users run")
    ap.add_argument("--users-runs", type=int, default=1, help="runs of the eight-users figure (default one)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the users' think times and messages")
    ap.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                    help="send ignore_eos: true (honoured by llama-server; Wick ignores the field)")
    ap.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated subset of {','.join(FIGURES)}")
    args = ap.parse_args()
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    if unknown := set(only) - set(FIGURES):
        ap.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(FIGURES)}")
    if args.llama_server is None:
        bin_dir = subprocess.run([os.path.join(ROOT, "scripts", "build-llama-cpp.sh")], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        args.llama_server = os.path.join(bin_dir, "llama-server")
    for path in (args.wick, args.llama_server):
        if not os.access(path, os.X_OK):
            ap.error(f"{path} is not an executable")

    log_dir = tempfile.TemporaryDirectory(prefix="bench-serve-")
    targets = []
    try:
        wick, wick_cmd = start_wick(args, log_dir.name)
        targets.append(wick)
        llama, llama_cmd = start_llama(args, log_dir.name)
        targets.append(llama)
        for t in targets:  # warm up: first request paths, lazy allocations
            t.stream([{"role": "user", "content": "Say hello."}], 8, False)

        res = {t.name: {f: [] for f in FIGURES} for t in targets}
        figures = [(f, fn) for f, fn in (("single", one_stream), ("four", four_streams),
                                          ("conversation", conversation)) if f in only]
        for run in range(args.r if figures else 0):
            order = targets if run % 2 == 0 else targets[::-1]
            for figure, fn in figures:
                for t in order:
                    res[t.name][figure].append(fn(t, args, run))
            print(f"run {run + 1}/{args.r}: " + "; ".join(
                f"{t.name} " + ", ".join(brief(f, res[t.name][f][-1]) for f, _ in figures) for t in targets),
                file=sys.stderr)
        if "users" in only:
            for run in range(args.users_runs):
                for t in (targets if run % 2 == 0 else targets[::-1]):
                    res[t.name]["users"].append(users(t, args))
                    print(f"8 users, run {run + 1}/{args.users_runs}: {t.name} "
                          f"{brief('users', res[t.name]['users'][-1])}", file=sys.stderr)
        rss = {t.name: t.peak_rss_mib() for t in targets}
    finally:
        for t in targets:
            t.stop()
        log_dir.cleanup()

    report(args, only, res, rss, wick_cmd, llama_cmd, {t.name: t.usage_seen for t in targets})


def brief(figure, m):
    if figure == "single":
        return f"one stream ttft {m['ttft'] * 1000:.0f} ms, {m['tps']:.1f} tok/s ({m['tokens']} tok)"
    if figure == "four":
        return f"four streams {m['tps']:.1f} tok/s ({sum(m['tokens'])} tok in {m['wall']:.1f} s)"
    if figure == "conversation":
        return f"turn 1 / 10 ttft {m['ttft1'] * 1000:.0f} / {m['ttft10'] * 1000:.0f} ms"
    return (f"ttft p50 {m['p50'] * 1000:.0f} ms, p95 {m['p95'] * 1000:.0f} ms over {m['turns']} turns "
            f"({m['refused']} refused)")


def report(args, only, res, rss, wick_cmd, llama_cmd, usage_seen):
    W, L = res["wick"], res["llama-server"]
    med = lambda rows, key: statistics.median(r[key] for r in rows)
    rows = []  # (figure, wick, llama, unit, higher is better)

    def add(label, w, l, fmt, higher):
        rows.append((label, w, l, fmt, higher))

    ms = lambda v: f"{v * 1000:.0f} ms"
    if "single" in only:
        add("one stream, time to first token", med(W["single"], "ttft"), med(L["single"], "ttft"), ms, False)
        add("one stream, decode tok/s", med(W["single"], "tps"), med(L["single"], "tps"), "{:.1f}".format, True)
    if "four" in only:
        add("four concurrent streams, aggregate tok/s", med(W["four"], "tps"), med(L["four"], "tps"),
            "{:.1f}".format, True)
        if "single" in only:
            add("four streams / its own one stream", med(W["four"], "tps") / med(W["single"], "tps"),
                med(L["four"], "tps") / med(L["single"], "tps"), "{:.2f}×".format, True)
    if "conversation" in only:
        add("10-turn conversation, time to first token of turn 1", med(W["conversation"], "ttft1"),
            med(L["conversation"], "ttft1"), ms, False)
        add("10-turn conversation, time to first token of turn 10", med(W["conversation"], "ttft10"),
            med(L["conversation"], "ttft10"), ms, False)
        add("turn 10 / turn 1", med(W["conversation"], "ratio"), med(L["conversation"], "ratio"),
            "{:.2f}×".format, False)
    if "users" in only:
        add("8 users, time to first token p50", med(W["users"], "p50"), med(L["users"], "p50"), ms, False)
        add("8 users, time to first token p95", med(W["users"], "p95"), med(L["users"], "p95"), ms, False)
    add("peak RSS", rss["wick"], rss["llama-server"], "{:.0f} MiB".format, False)

    print(f"\nmodel {os.path.basename(args.model)}, {args.threads} threads, {args.parallel} sequences at once "
          f"(WICK_PARALLEL, -np), {args.ctx_per_slot} tokens of context per slot; greedy"
          f"{', ignore_eos sent' if args.ignore_eos else ''}; medians of {args.r} run{'s' if args.r != 1 else ''}"
          + (f"; 8 users: {args.users_runs} run{'s' if args.users_runs != 1 else ''} of {args.users_seconds:.0f} s per server" if "users" in only else ""))
    print()
    print("| figure | Wick | llama-server | Wick / llama-server |")
    print("|---|---|---|---|")
    for label, w, l, fmt, higher in rows:
        ratio = w / l if l else float("nan")
        better = "higher is better" if higher else "lower is better"
        print(f"| {label} | {fmt(w)} | {fmt(l)} | **{ratio:.2f}×** ({better}) |")

    print("\nruns:")
    for name, r in (("Wick", W), ("llama-server", L)):
        if r["single"]:
            print(f"  {name}, one stream: ttft {[round(m['ttft'] * 1000) for m in r['single']]} ms, "
                  f"tok/s {[round(m['tps'], 1) for m in r['single']]}, completion tokens "
                  f"{[m['tokens'] for m in r['single']]}, prompt tokens {[m['prompt_tokens'] for m in r['single']]}")
        if r["four"]:
            print(f"  {name}, four streams: tok/s {[round(m['tps'], 1) for m in r['four']]}, wall "
                  f"{[round(m['wall'], 1) for m in r['four']]} s, completion tokens {[m['tokens'] for m in r['four']]}, "
                  f"ttfts {[[round(x, 2) for x in m['ttfts']] for m in r['four']]} s")
        for i, m in enumerate(r["conversation"]):
            print(f"  {name}, conversation run {i + 1}: ttft by turn {[round(x * 1000) for x in m['ttfts']]} ms; "
                  f"prompt tokens {m['prompt_tokens']}; reply tokens {m['tokens']}")
        for i, m in enumerate(r["users"]):
            print(f"  {name}, 8 users run {i + 1}: {m['turns']} turns answered, {m['refused']} refused"
                  f"{' ' + repr(m['refusals']) if m['refusals'] else ''}, {m['tokens']} completion tokens in "
                  f"{m['wall']:.0f} s, longest prompt {m['longest_prompt']} tokens, p50 {m['p50'] * 1000:.0f} ms, "
                  f"p95 {m['p95'] * 1000:.0f} ms")
    counts = "; ".join(f"{n}: {'usage chunk' if seen else 'content chunks (no usage chunk)'}"
                       for n, seen in usage_seen.items())
    print(f"completion tokens counted from: {counts}")
    print(f"\ncommand: {shlex.join(['python3'] + sys.argv)}")
    print(f"wick: {wick_cmd}")
    print(f"llama-server: {llama_cmd}")


if __name__ == "__main__":
    main()
