#!/usr/bin/env python3
"""A scripted OpenAI-compatible chat server for the browser tests.

It speaks the exact streaming wire format of `POST /v1/chat/completions`
(server-sent `chat.completion.chunk` events, a usage chunk, `[DONE]`) and
answers by script, so the tests can check what Wick sent a model and show
replies whose words they choose. `GET /requests` lists every request body
received, newest last.

What it answers, from the last message:
- a title request (Wick's background title prompt): "Title: <first word of
  the message> notes";
- `continue_final_message`: " and so it continued.";
- a user message "say: TEXT": TEXT, word by word (code, math, <think>…);
- "long: N": N words, then finish reason "length";
- "slow: N": N words, 0.3 s apart;
- "held: N": N words, then 2 s before finish reason "length" (and its
  continuation waits 2 s before its first word), so a page can be read
  while the reply holds all its words but has not ended;
- anything else: "Scripted answer to: <message>".
"""

import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = []


HOLD = 2.0


def script(body):
    """The reply's text, its finish reason, the pause between words, and the
    pauses before the first word and before the end."""
    messages = body.get("messages", [])
    last = messages[-1]["content"] if messages else ""
    if body.get("continue_final_message"):
        asked = messages[-2]["content"] if len(messages) > 1 else ""
        lead = HOLD if asked.startswith("held: ") else 0
        return " and so it continued.", "stop", 0, lead, 0
    if "Write a title of at most six words" in last:
        material = last.split("Message:\n", 1)[-1].split()
        first = material[0] if material else "Untitled"
        return f"Title: {first.capitalize()} notes", "stop", 0, 0, 0
    if last.startswith("say: "):
        return last[len("say: "):], "stop", 0, 0, 0
    match = re.match(r"(long|slow|held): (\d+)$", last)
    if match:
        words = " ".join(f"word{i}" for i in range(int(match.group(2))))
        kind = match.group(1)
        if kind == "long":
            return words, "length", 0, 0, 0
        if kind == "held":
            return words, "length", 0, 0, HOLD
        return words, "stop", 0.3, 0, 0
    return f"Scripted answer to: {last}", "stop", 0, 0, 0


def pieces(text):
    """The reply in streamed pieces: words with their following spaces."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/requests":
            data = json.dumps(RECEIVED).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        RECEIVED.append(body)
        text, finish, pause, lead, tail = script(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(payload):
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        def chunk(delta, finish_reason=None):
            return {
                "id": "scripted",
                "object": "chat.completion.chunk",
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        try:
            event(chunk({"role": "assistant", "content": ""}))
            time.sleep(lead)
            parts = pieces(text)
            for part in parts:
                event(chunk({"content": part}))
                time.sleep(pause or 0.01)
            time.sleep(tail)
            event(chunk({}, finish))
            event({"id": "scripted", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": len(messages_text(body).split()),
                             "completion_tokens": len(parts),
                             "total_tokens": 0}})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # Wick stopped reading: the reply was stopped.
        self.close_connection = True


def messages_text(body):
    return " ".join(m.get("content", "") for m in body.get("messages", []))


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3211
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
