#!/usr/bin/env python3
"""Records llama.cpp's answers for Wick's fidelity tests, once, into inference/tests/data/.

- llama_cpp_tokens.json: llama.cpp's token ids (llama-tokenize) for each string of
  tokenizer_corpus.json;
- llama_cpp_greedy.json: for each prompt of reference_prompts.json, the prompt as
  llama.cpp's own chat-template code renders it (llama-server /apply-template with
  --jinja) and its first greedy tokens (llama-server /completion, temperature 0).

Usage: scripts/record-reference.py [--bin DIR] [--model PATH] [--tokens N]
(DIR defaults to what scripts/build-llama-cpp.sh builds). `make test` does not
need llama.cpp: the tests read these files.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "inference", "tests", "data")


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


def tokenize(bin_dir, model, text):
    out = subprocess.run(
        [os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-p", text, "--ids", "--log-disable"],
        check=True, capture_output=True, text=True,
    ).stdout
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--port", type=int, default=8771)
    args = ap.parse_args()
    bin_dir = args.bin or subprocess.run(
        [os.path.join(ROOT, "scripts", "build-llama-cpp.sh")], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]

    corpus = json.load(open(os.path.join(DATA, "tokenizer_corpus.json")))
    tokens = [{"text": t, "ids": tokenize(bin_dir, args.model, t)} for t in corpus]
    with open(os.path.join(DATA, "llama_cpp_tokens.json"), "w") as f:
        json.dump(tokens, f, ensure_ascii=False, indent=1)
    print(f"recorded token ids for {len(tokens)} strings", file=sys.stderr)

    server = subprocess.Popen(
        [os.path.join(bin_dir, "llama-server"), "-m", args.model, "--port", str(args.port), "--host", "127.0.0.1",
         "--jinja", "-t", "2", "-c", "2048", "-np", "1", "--log-disable"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.5)
        prompts = json.load(open(os.path.join(DATA, "reference_prompts.json")))
        greedy = []
        for p in prompts:
            messages = [{"role": "user", "content": p}]
            rendered = post(base + "/apply-template", {"messages": messages})["prompt"]
            out = post(base + "/completion", {
                "prompt": rendered, "n_predict": args.tokens, "temperature": 0, "top_k": 1,
                "return_tokens": True, "cache_prompt": False, "seed": 0,
            })
            greedy.append({"user": p, "rendered": rendered, "ids": out["tokens"], "text": out["content"],
                           "stop": out.get("stop_type")})
        with open(os.path.join(DATA, "llama_cpp_greedy.json"), "w") as f:
            json.dump(greedy, f, ensure_ascii=False, indent=1)
        print(f"recorded greedy tokens for {len(greedy)} prompts", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
