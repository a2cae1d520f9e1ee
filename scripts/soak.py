#!/usr/bin/env python3
"""Soak campaign (make soak): the release binary with the real model under
sustained chat load, as a team would give it.

- SENDERS people (own sessions) chat in their own conversations: send, read
  the reply's stream to its end, think 1-3 s, send again.
- READERS extra stream readers (other tabs of the same people): each follows
  whichever reply its person is waiting for, from the start.
- Errors counted: a send that is not 200, a stream that does not open with
  200 or ends without its final event, a reply that failed.
- Time to first token (send -> first token event), p50 and p95.
- Resident memory of the wick process: at start (model loaded and one
  reply written, so its pages are read in), its peak, 30 s after the load
  stopped, and at the end (--settle, 320 s after: the kept KV caches are
  released after WICK_KV_CACHE_IDLE_SECS, 300 by default); goal: the end
  within 20 % of the start.

Prints one table row for RELIABILITY.md. Only the standard library.
"""

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.parse

from wick_process import MODEL, WICK, Wick

TOPICS = ["the sea", "a lighthouse", "bread", "winter", "a library", "bicycles", "the moon",
          "coffee", "a garden", "trains", "rain", "mountains", "a market", "owls", "maps"]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.errors = []
        self.ttft = []
        self.replies = 0
        self.reads = 0

    def error(self, what):
        with self.lock:
            self.errors.append(what)


def read_stream(wick, message, cookie, started=None):
    """Reads a reply's stream to its end: (ok, seconds to the first token or None)."""
    c = http.client.HTTPConnection(wick.host, wick.port, timeout=600)
    c.request("GET", f"/api/messages/{message}/stream", headers={"Cookie": cookie})
    r = c.getresponse()
    if r.status != 200:
        c.close()
        return f"stream answered {r.status}", None
    event, first = None, None
    try:
        while True:
            line = r.readline()
            if not line:
                return "the stream ended without its final event", first
            line = line.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "token" and first is None and started is not None:
                    first = time.perf_counter() - started
                if event == "end":
                    return None, first
                if event == "failed":
                    return f"the reply failed: {line[5:]}", first
    finally:
        c.close()


class Person:
    """One sender and the readers that follow its replies."""

    def __init__(self, wick, tally, until, index):
        self.wick, self.tally, self.until = wick, tally, until
        self.cookie = None
        self.conversation = None
        self.current = None  # the reply being written, for the readers
        self.rng = random.Random(index)

    def send_loop(self):
        while time.time() < self.until:
            topic = self.rng.choice(TOPICS)
            form = {"content": f"Tell me one short fact about {topic}."}
            if self.conversation:
                form["conversation_id"] = self.conversation
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if self.cookie:
                headers["Cookie"] = self.cookie
            started = time.perf_counter()
            r, data = self.wick.request("POST", self.wick.send_url, urllib.parse.urlencode(form),
                                        headers)
            if r.status != 200:
                self.tally.error(f"send answered {r.status}: {data[:200]!r}")
                time.sleep(1)
                continue
            if not self.cookie:
                self.cookie = r.getheader("Set-Cookie").split(";", 1)[0]
            sent = json.loads(data)
            self.conversation = sent["conversation_id"]
            self.current = sent["message_id"]
            problem, first = read_stream(self.wick, sent["message_id"], self.cookie, started)
            self.current = None
            with self.tally.lock:
                self.tally.replies += 1
                if first is not None:
                    self.tally.ttft.append(first)
            if problem:
                self.tally.error(problem)
            time.sleep(self.rng.uniform(1, 3))

    def read_loop(self):
        while time.time() < self.until:
            message, cookie = self.current, self.cookie
            if not message or not cookie:
                time.sleep(0.2)
                continue
            problem, _ = read_stream(self.wick, message, cookie)
            with self.tally.lock:
                self.tally.reads += 1
            if problem:
                self.tally.error(f"reader: {problem}")
            # The next reply, not this one again.
            while self.current == message and time.time() < self.until:
                time.sleep(0.1)


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wick", default=WICK)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=64, help="max new tokens per reply")
    ap.add_argument("--threads", type=int, default=2)
    # The kept KV caches are released after WICK_KV_CACHE_IDLE_SECS (300 by
    # default, checked every 10 s): the end figure is taken after that.
    ap.add_argument("--settle", type=float, default=320, help="seconds after the load before the end RSS")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as db_dir:
        wick = Wick(args.wick, dict(
            WICK_LOG="warn", WICK_MODEL=args.model, WICK_DATABASE_URL=f"sqlite://{db_dir}/soak.db",
            WICK_MAX_NEW_TOKENS=str(args.tokens), WICK_THREADS=str(args.threads),
            # Room in the queue for everyone: waiting is measured, not refused.
            WICK_QUEUE_DEPTH=str(args.senders + 4)))
        try:
            # One reply first, so the start figure counts the model's pages
            # (mapped from the file, read on first use) as the load will.
            warm = Person(wick, Tally(), time.time() + 1, -1)
            warm.send_loop()
            time.sleep(2)
            start_rss = wick.rss_kb()
            tally = Tally()
            until = time.time() + args.minutes * 60
            people = [Person(wick, tally, until, i) for i in range(args.senders)]
            threads = [threading.Thread(target=p.send_loop) for p in people]
            threads += [threading.Thread(target=people[i % len(people)].read_loop)
                        for i in range(args.readers)]
            for t in threads:
                t.start()
            peak = start_rss
            while any(t.is_alive() for t in threads):
                peak = max(peak, wick.rss_kb())
                time.sleep(1)
            time.sleep(min(30, args.settle))
            after_30 = wick.rss_kb()
            time.sleep(max(0, args.settle - 30))
            end_rss = wick.rss_kb()
            if wick.proc.poll() is not None:
                tally.error(f"wick exited with {wick.proc.returncode}")
        finally:
            wick.stop()

    mb = lambda kb: kb / 1024
    back = (end_rss - start_rss) / start_rss * 100
    print(f"soak: {args.minutes:g} min, {args.senders} senders, {args.readers} readers, "
          f"{args.tokens} tokens per reply")
    print(f"replies: {tally.replies}, streams read by readers: {tally.reads}, errors: {len(tally.errors)}")
    for e in tally.errors[:10]:
        print(f"  error: {e}")
    print(f"time to first token: p50 {percentile(tally.ttft, 50):.2f} s, "
          f"p95 {percentile(tally.ttft, 95):.2f} s")
    print(f"RSS: start {mb(start_rss):.0f} MB, peak {mb(peak):.0f} MB, 30 s after the load "
          f"{mb(after_30):.0f} MB, end ({args.settle:g} s after) {mb(end_rss):.0f} MB "
          f"({back:+.0f} % of start; goal within 20 %)")
    print(f"| {time.strftime('%Y-%m-%d')} | {args.minutes:g} min, {args.senders} senders, "
          f"{args.readers} readers | {tally.replies} | {len(tally.errors)} | "
          f"{percentile(tally.ttft, 50):.2f} / {percentile(tally.ttft, 95):.2f} s | "
          f"{mb(start_rss):.0f} / {mb(peak):.0f} / {mb(after_30):.0f} / {mb(end_rss):.0f} MB "
          f"({back:+.0f} %) |")
    sys.exit(1 if tally.errors else 0)


if __name__ == "__main__":
    main()
