#!/usr/bin/env python3
"""Many server-rendered page loads at once against the release binary: a
conversation page with a reply (and the start page), N loads, 32 at a time.
Prints how each load ended; a load that dropped its connection or timed out
is a failure. Not part of `make test` (it is a campaign, like soak.py).

Usage: scripts/page_load.py [N]   (default 4000; needs target/release/wick and the default model)
"""
import collections
import concurrent.futures
import json
import sys
import tempfile
import time
import urllib.parse

from soak import read_stream
from wick_process import MODEL, WICK, Wick


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    db = tempfile.mkdtemp()
    w = Wick(WICK, dict(WICK_DATABASE_URL=f"sqlite://{db}/pages.db", WICK_MODEL=MODEL, WICK_THREADS="1",
                        WICK_LOG="warn", WICK_MAX_NEW_TOKENS="40"))
    try:
        form = urllib.parse.urlencode({"content": "Write **bold** and a `code` list."})
        r, data = w.request("POST", w.send_url, form, {"Content-Type": "application/x-www-form-urlencoded"})
        cookie = r.getheader("Set-Cookie").split(";", 1)[0]
        sent = json.loads(data)
        problem, _ = read_stream(w, sent["message_id"], cookie)
        if problem:
            sys.exit(f"the first reply failed: {problem}")
        paths = [f"/c/{sent['conversation_id']}", "/"]

        def load(i):
            started = time.time()
            try:
                r, _ = w.request("GET", paths[i % 2], headers={"Cookie": cookie}, timeout=15)
                return r.status, time.time() - started
            except Exception as e:  # a dropped connection or a timeout is the finding
                return type(e).__name__, time.time() - started

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(load, range(n)))
    finally:
        w.stop()
    ends = collections.Counter(r[0] for r in results)
    print(f"{n} loads, 32 at once: {dict(ends)}; slowest {max(r[1] for r in results):.3f} s")
    sys.exit(0 if set(ends) == {200} else 1)


if __name__ == "__main__":
    main()
