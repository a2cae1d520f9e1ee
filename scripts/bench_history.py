#!/usr/bin/env python3
"""`make bench-history`: a big history in one SQLite file, served by the real binary.

Generates, straight into a fresh Wick database (migrated by the binary itself,
so the FTS5 triggers index every row as Wick would), two users with C
conversations of M messages each (10,000 x 100 = 1,000,000 messages each by
default), their conversations interleaved as if they had chatted at the same
time. Then, against `wick` on loopback with the first user's session:

  * the sidebar: `GET /` (the whole page, the sidebar's first 50 included),
    median and p95 of 20 after 5 warm-ups;
  * search: `GET /search?q=...` (the whole page) for 20 different queries
    (frequent, middling and rare words, two words, a prefix, a phrase), median;
  * export: `GET /export.json` read to the end: MB/s and the server's peak
    resident memory over its resident memory before the request;
  * import: a generated ChatGPT `conversations.json` of about 50 MB posted to
    `/import` as a new visitor, in seconds.

The figures are absolute (the issue's targets are printed beside them): there
is no other program that serves this history to compare with.
Only the standard library is used.

Usage: scripts/bench_history.py [--wick target/release/wick] [-c 10000] [-m 100] [--import-mb 50]
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vocabulary(n=6000, seed=14):
    """`n` made-up words (so that a query's frequency is known) in rank order."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "do", "gu", "he", "ji", "bo",
                 "re", "an", "el", "or", "ut"]
    words, seen = [], set()
    while len(words) < n:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class Server:
    def __init__(self, wick, db, site_root):
        env = dict(os.environ, WICK_LOG="warn", WICK_DATABASE_URL=f"sqlite://{db}",
                   WICK_ADDR="127.0.0.1:0", WICK_SITE_ROOT=site_root)
        self.proc = subprocess.Popen([wick], stdout=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode().strip()
        url = urllib.parse.urlparse(line.rsplit(" ", 1)[-1])
        self.host, self.port = url.hostname, url.port

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=600)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def generate(db, conversations, messages, words):
    """Two users' histories, written as Wick writes them; alice's session token."""
    cum = []
    total = 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    rng = random.Random(7)
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous = OFF")
    now = int(time.time() * 1000)
    con.execute("INSERT INTO users (id, kind, created_at) VALUES (1, 'registered', ?), (2, 'registered', ?)",
                (now, now))
    raw = secrets.token_bytes(32)
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    con.execute("INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at) "
                "VALUES (1, ?, ?, ?, ?)", (hashlib.sha256(raw).digest(), now, now, now + 10 ** 11))
    started = time.perf_counter()
    # Oldest first, a minute apart per conversation; users interleaved.
    start = now - conversations * 2 * 60_000
    t = start
    for i in range(conversations):
        for user in (1, 2):
            cid = secrets.token_hex(16)
            rows = []
            parent = None
            for k in range(messages):
                mid = secrets.token_hex(16)
                role = "user" if k % 2 == 0 else "assistant"
                length = rng.randint(5, 25) if role == "user" else rng.randint(30, 90)
                text = " ".join(rng.choices(words, cum_weights=cum, k=length))
                rows.append((mid, cid, parent, role, text, "done", "eos" if role == "assistant" else None,
                             "default" if role == "assistant" else None, t + k, t + k))
                parent = mid
            con.execute("INSERT INTO conversations (id, user_id, title, title_source, model, leaf_message_id, "
                        "created_at, updated_at) VALUES (?, ?, ?, 'model', 'default', ?, ?, ?)",
                        (cid, user, " ".join(rng.choices(words, cum_weights=cum, k=4)).capitalize(), parent,
                         t, t + messages))
            con.executemany("INSERT INTO messages (id, conversation_id, parent_id, role, content, state, "
                            "finish_reason, model, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            t += 60_000
        if (i + 1) % 1000 == 0:
            con.commit()
            print(f"  {i + 1} of {conversations} conversations per user "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    con.commit()
    con.close()
    return token


def chatgpt_export(target_mb, words):
    """A ChatGPT `conversations.json` of about `target_mb` MB: 20-message conversations."""
    rng = random.Random(11)
    out, size, n = [], 0, 0
    while size < target_mb * 1_000_000:
        mapping = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
        parent = "root"
        t = 1_700_000_000.0 + n * 3600
        for k in range(20):
            node = f"n{n}-{k}"
            role = "user" if k % 2 == 0 else "assistant"
            text = " ".join(rng.choices(words[:3000], k=rng.randint(20, 120)))
            mapping[node] = {"id": node, "parent": parent, "children": [],
                             "message": {"id": node, "author": {"role": role}, "create_time": t + k,
                                         "content": {"content_type": "text", "parts": [text]}}}
            mapping[parent]["children"].append(node)
            parent = node
        conversation = {"id": f"conv-{n}", "title": f"Imported {n}", "create_time": t, "update_time": t + 20,
                        "mapping": mapping, "current_node": parent}
        size += len(json.dumps(conversation))
        out.append(conversation)
        n += 1
    return json.dumps(out).encode(), n


def timed(server, path, cookie, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r, data = server.request("GET", path, headers={"Cookie": cookie})
        times.append((time.perf_counter() - started) * 1000)
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status} {data[:300]!r}")
    return times, data


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wick", default=os.path.join(ROOT, "target", "release", "wick"))
    p.add_argument("-c", "--conversations", type=int, default=10_000)
    p.add_argument("-m", "--messages", type=int, default=100)
    p.add_argument("--import-mb", type=int, default=50)
    p.add_argument("--keep", help="keep the database (and its session) in this directory; "
                                  "run again with the same directory to measure it again without generating")
    args = p.parse_args()
    site_root = os.path.join(ROOT, "target", "site")
    work = args.keep or tempfile.mkdtemp(prefix="wick-history-")
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "wick.db")
    words = vocabulary()

    token_file = os.path.join(work, "session")
    if args.keep and os.path.exists(token_file):
        with open(token_file) as f:
            cookie = f.read().strip()
        print(f"measuring the database kept in {db}", file=sys.stderr)
    else:
        # The binary makes the schema (migrations, FTS5 tables and triggers).
        Server(args.wick, db, site_root).stop()
        print(f"generating {args.conversations} conversations x {args.messages} messages for each of 2 "
              f"users into {db}", file=sys.stderr)
        started = time.perf_counter()
        cookie = "wick_session=" + generate(db, args.conversations, args.messages, words)
        print(f"generated in {time.perf_counter() - started:.0f} s; database "
              f"{os.path.getsize(db) / 1e6:.0f} MB", file=sys.stderr)
        with open(token_file, "w") as f:
            f.write(cookie)

    server = Server(args.wick, db, site_root)
    try:
        timed(server, "/", cookie, 5)
        sidebar, page = timed(server, "/", cookie, 20)
        assert b"More conversations" in page, "the sidebar's first page has more after it"

        queries = [words[3], words[10], words[40], words[150], words[400], words[900], words[1500], words[2500],
                   words[4000], words[5900], f"{words[5]} {words[60]}", f"{words[200]} {words[300]}",
                   f"{words[12][:3]}*", f"{words[700][:4]}*", f'"{words[2]} {words[3]}"', words[20].upper(),
                   f"{words[1000]} {words[5]}", words[3000], words[5000], "nosuchwordanywhere"]
        search_ms, found = [], []
        for q in queries:
            path = "/search?q=" + urllib.parse.quote(q)
            timed(server, path, cookie, 1)
            times, page = timed(server, path, cookie, 3)
            search_ms.append(statistics.median(times))
            found.append(page.count(b'class="search-title"'))

        before = server.rss_mb()
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        c = http.client.HTTPConnection(server.host, server.port, timeout=600)
        c.request("GET", "/export.json", headers={"Cookie": cookie})
        r = c.getresponse()
        exported = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            exported += len(chunk)
        export_s = time.perf_counter() - started
        done.set()
        sampler.join()
        if r.status != 200:
            sys.exit(f"export: {r.status}")

        body, imported = chatgpt_export(args.import_mb, words)
        started = time.perf_counter()
        r, data = server.request("POST", "/import", body=body,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
        import_s = time.perf_counter() - started
        if r.status != 200:
            sys.exit(f"import: {r.status} {data[:500]!r}")
        answer = json.loads(data)
    finally:
        server.stop()

    mb = exported / 1e6
    print()
    print(f"history: {args.conversations} conversations x {args.messages} messages per user, 2 users, "
          f"database {os.path.getsize(db) / 1e6:.0f} MB")
    print(f"| measure | result | target |")
    print(f"|---|---|---|")
    print(f"| sidebar: GET / with the first 50 (median, p95 of 20) | {statistics.median(sidebar):.1f} ms, "
          f"{sorted(sidebar)[18]:.1f} ms | <= 20 ms |")
    print(f"| search: GET /search, 20 queries (median of their medians; slowest) | "
          f"{statistics.median(search_ms):.1f} ms; {max(search_ms):.1f} ms | <= 50 ms |")
    print(f"| export all: {mb:.0f} MB streamed | {mb / export_s:.1f} MB/s, memory +{peak[0] - before:.0f} MB "
          f"(RSS {before:.0f} -> peak {peak[0]:.0f} MB) | >= 20 MB/s, <= +50 MB |")
    print(f"| import: ChatGPT export of {len(body) / 1e6:.0f} MB, {imported} conversations | {import_s:.1f} s "
          f"({answer}) | <= 30 s |")
    print()
    print("results per query: " + ", ".join(f"{q!r}: {n} in {ms:.1f} ms" for q, n, ms in zip(queries, found, search_ms)))


if __name__ == "__main__":
    main()
