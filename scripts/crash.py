#!/usr/bin/env python3
"""Crash campaign (make crash): `kill -9` the release binary at random
moments while replies stream, restart it on the same SQLite file, and check
that nothing stored was lost.

Each round, three people (own sessions, own conversations) send a message
and read their replies' streams; after a random 0.2-6 s the process is
killed without warning (SIGKILL: no shutdown code runs) and started again.
Then, reading the database file:

- `PRAGMA integrity_check` says ok;
- every message is `done`, `interrupted` or `error` (none left `generating`);
- every message whose send was answered exists, with its text;
- every reply whose end event was seen before the kill is `done`, with
  exactly the text streamed;
- every reply cut by the kill is `interrupted` (or `error`) and its text is
  the beginning of what was streamed (the text flushed before the kill);
- every message stored in an earlier round is unchanged.

Each broken rule is one loss; the goal is 0. Only the standard library.
"""

import argparse
import http.client
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.parse

from wick_process import MODEL, WICK, Wick

PROMPTS = ["Write a long story about a lighthouse keeper.",
           "Explain how bread is made, step by step, in detail.",
           "Describe a walk through a city in winter, at length."]


class Person:
    def __init__(self, prompt):
        self.prompt = prompt
        self.cookie = None
        self.conversation = None


def one_turn(wick, person, seen):
    """Sends and streams until the end or the kill; writes what it saw into `seen`."""
    form = {"content": person.prompt}
    if person.conversation:
        form["conversation_id"] = person.conversation
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if person.cookie:
        headers["Cookie"] = person.cookie
    try:
        r, data = wick.request("POST", wick.send_url, urllib.parse.urlencode(form), headers,
                               timeout=60)
    except OSError:
        return  # killed before it answered: nothing is owed
    if r.status != 200:
        seen["refused"] = f"{r.status} {data[:200]!r}"
        return
    if not person.cookie:
        person.cookie = r.getheader("Set-Cookie").split(";", 1)[0]
    sent = json.loads(data)
    person.conversation = sent["conversation_id"]
    if sent.get("user_message"):
        seen["user"] = (sent["user_message"]["id"], sent["user_message"]["content"])
    seen["reply"] = sent["message_id"]
    seen["text"] = ""
    try:
        c = http.client.HTTPConnection(wick.host, wick.port, timeout=60)
        c.request("GET", f"/api/messages/{sent['message_id']}/stream",
                  headers={"Cookie": person.cookie})
        stream = c.getresponse()
        event = None
        while True:
            line = stream.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = json.loads(line[5:])
                if event == "token":
                    seen["text"] += payload["text"]
                elif event in ("end", "failed"):
                    seen["ended"] = event
                    return
    except (OSError, http.client.HTTPException):
        return


def stored(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = conn.execute("SELECT id, role, state, content FROM messages").fetchall()
    finally:
        conn.close()
    return check, {r[0]: (r[1], r[2], r[3]) for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wick", default=WICK)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    losses, notes = [], []
    cut, ended, flushed_short = 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "crash.db")
        wick = Wick(args.wick, dict(
            WICK_LOG="error", WICK_MODEL=args.model, WICK_DATABASE_URL=f"sqlite://{db}",
            WICK_MAX_NEW_TOKENS="64", WICK_THREADS=str(args.threads)))
        people = [Person(p) for p in PROMPTS]
        final_before = {}
        try:
            for round_ in range(1, args.kills + 1):
                seen = [dict() for _ in people]
                threads = [threading.Thread(target=one_turn, args=(wick, p, s))
                           for p, s in zip(people, seen)]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.2, 6.0))
                wick.kill()
                for t in threads:
                    t.join()
                wick.start()
                check, rows = stored(db)
                lose = lambda what: losses.append(f"round {round_}: {what}")
                if check != "ok":
                    lose(f"integrity_check: {check}")
                for mid, (role, state, _) in rows.items():
                    if state not in ("done", "interrupted", "error"):
                        lose(f"message {mid} is {state} after the restart")
                for mid, row in final_before.items():
                    if rows.get(mid) != row:
                        lose(f"message {mid} changed or vanished: {row} -> {rows.get(mid)}")
                for s in seen:
                    if "refused" in s:
                        notes.append(f"round {round_}: a send was refused: {s['refused']}")
                    if "user" in s:
                        uid, content = s["user"]
                        if rows.get(uid, (None, None, None))[2] != content:
                            lose(f"the sent message {uid} is missing or changed")
                    if "reply" not in s:
                        continue
                    role, state, content = rows.get(s["reply"], (None, None, None))
                    if role is None:
                        lose(f"reply {s['reply']} vanished")
                    elif s.get("ended") == "end":
                        ended += 1
                        if state != "done" or content != s["text"]:
                            lose(f"reply {s['reply']} ended before the kill but is {state} "
                                 f"with {len(content)} of {len(s['text'])} characters")
                    elif not s.get("ended"):
                        cut += 1
                        if state not in ("interrupted", "error"):
                            lose(f"reply {s['reply']} cut by the kill is {state}")
                        if not s["text"].startswith(content):
                            lose(f"reply {s['reply']} stored text that was not streamed")
                        if len(content) < len(s["text"]):
                            flushed_short += 1
                final_before = rows
                print(f"round {round_:2}: {len(rows)} messages stored, "
                      f"{sum(1 for s in seen if 'reply' in s and not s.get('ended'))} replies cut, "
                      f"losses so far {len(losses)}", flush=True)
        finally:
            wick.kill()

    print(f"crash: {args.kills} kill -9 (seed {seed}); replies cut mid-stream: {cut}, "
          f"ended before a kill: {ended}; lost: {len(losses)}")
    print(f"  cut replies stored with less than was streamed (the last flush, at most "
          f"500 ms or 32 tokens, came before the kill): {flushed_short} of {cut}")
    for n in notes[:5]:
        print(f"  note: {n}")
    for l in losses[:20]:
        print(f"  LOST: {l}")
    sys.exit(1 if losses else 0)


if __name__ == "__main__":
    main()
