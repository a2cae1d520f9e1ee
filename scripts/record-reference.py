#!/usr/bin/env python3
"""Records llama.cpp's answers for Wick's fidelity tests, once, into inference/tests/data/.

- llama_cpp_tokens.json: llama.cpp's token ids (llama-tokenize) for each string of
  tokenizer_corpus.json;
- llama_cpp_greedy.json: for each prompt of reference_prompts.json, the prompt as
  llama.cpp's own chat-template code renders it (llama-server /apply-template with
  --jinja) and its first greedy tokens (llama-server /completion, temperature 0).

With --gemma3 it records only gemma3_llama_cpp_tokens.json and gemma3_llama_cpp_greedy.json: llama.cpp's token ids
with Gemma 3 270M (models/gemma-3-270m-q4_k_m.gguf, `make gemma3`) for the same
corpus plus GEMMA3_EXTRA (Gemma's chat markup, user-defined tokens, byte fallback),
without the bos token and with the prompt taken verbatim (--no-bos --no-escape);
special tokens written in the text are parsed, as llama-tokenize does by default.

With --logits it records only llama_cpp_logits.json: for the SmolLM2 chat prompts
and the Gemma 3 prompts, the f32 sum of llama.cpp's logits after the prompt pass
(llama-eval-callback), which Wick's engines must reproduce exactly.

Usage: scripts/record-reference.py [--bin DIR] [--model PATH] [--tokens N] [--gemma3 | --logits]
(DIR defaults to what scripts/build-llama-cpp.sh builds). `make test` does not
need llama.cpp: the tests read these files.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "inference", "tests", "data")
GEMMA3_MODEL = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")

# Strings for Gemma 3 beyond tokenizer_corpus.json: its chat markup (control tokens),
# user-defined tokens (newline, space and tab runs, HTML tags), characters outside the
# vocabulary (byte fallback) and a literal backslash escape.
GEMMA3_EXTRA = [
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nHi<end_of_turn>\n",
    "a\n\n\n\n\nb\t\t\tc" + " " * 40 + "d",
    "<table><tr><td>1</td></tr></table> <b>bold</b> <code>x</code>",
    "\U0001F9EC\U0001FAE0 \u2603\ufe0f \u0F3A\u0F3B \U00010348 \u00A0nbsp",
    "▁already escaped ▁▁ spaces",
    "a literal \\n is not a newline",
    " ",
    "x",
]


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


def tokenize(bin_dir, model, text, extra=()):
    out = subprocess.run(
        [os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-p", text, "--ids", "--log-disable", *extra],
        check=True, capture_output=True, text=True,
    ).stdout
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return json.loads(line)


# Plain-text prompts for Gemma 3's greedy reference.
GEMMA3_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at 100 degrees Celsius because",
    "Le petit déjeuner français typique comprend",
]


def logits_sum(bin_dir, model, prompt):
    """llama.cpp's prompt pass as llama-eval-callback dumps it: the number of prompt
    tokens and the f32 sum of the last token's logits (`result_output`), printed
    to 6 decimals. Equal sums mean Wick computed the same logits, bit for bit in
    all likelihood, not merely close ones."""
    out = subprocess.run(
        [os.path.join(bin_dir, "llama-eval-callback"), "-m", model, "-p", prompt, "-n", "1", "-t", "2"],
        check=True, capture_output=True, text=True,
    )
    text = out.stdout + out.stderr
    tokens = int(re.search(r"inp_tokens\{(\d+),", text).group(1))
    after = text[text.index("result_output = "):]
    return tokens, re.search(r"sum = (-?[\d.]+)", after).group(1)


def record_logits(bin_dir):
    rows = []
    smollm2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    for e in json.load(open(os.path.join(DATA, "llama_cpp_greedy.json"))):
        n, total = logits_sum(bin_dir, smollm2, e["rendered"])
        rows.append({"model": "smollm2", "prompt": e["rendered"], "tokens": n, "logits_sum": total})
    for p in GEMMA3_PROMPTS:
        n, total = logits_sum(bin_dir, GEMMA3_MODEL, p)
        rows.append({"model": "gemma3", "prompt": p, "tokens": n, "logits_sum": total})
    with open(os.path.join(DATA, "llama_cpp_logits.json"), "w") as f:
        json.dump(rows, f, ensure_ascii=False, indent=1)
    print(f"recorded prompt logits sums for {len(rows)} prompts", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--port", type=int, default=8771)
    ap.add_argument("--gemma3", action="store_true", help="record gemma3_llama_cpp_tokens.json only")
    ap.add_argument("--logits", action="store_true", help="record llama_cpp_logits.json only")
    args = ap.parse_args()
    bin_dir = args.bin or subprocess.run(
        [os.path.join(ROOT, "scripts", "build-llama-cpp.sh")], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]

    if args.logits:
        record_logits(bin_dir)
        return
    corpus = json.load(open(os.path.join(DATA, "tokenizer_corpus.json")))
    if args.gemma3:
        model = args.model or GEMMA3_MODEL
        tokens = [{"text": t, "ids": tokenize(bin_dir, model, t, ["--no-bos", "--no-escape"])}
                  for t in corpus + GEMMA3_EXTRA]
        with open(os.path.join(DATA, "gemma3_llama_cpp_tokens.json"), "w") as f:
            json.dump(tokens, f, ensure_ascii=False, indent=1)
        print(f"recorded Gemma 3 token ids for {len(tokens)} strings", file=sys.stderr)

        def record(base):
            # Gemma 3 270M is a base model: plain completions, bos added as the file asks.
            greedy = []
            for p in GEMMA3_PROMPTS:
                out = post(base + "/completion", {
                    "prompt": p, "n_predict": args.tokens, "temperature": 0, "top_k": 1,
                    "return_tokens": True, "cache_prompt": False, "seed": 0,
                })
                greedy.append({"prompt": p, "ids": out["tokens"], "text": out["content"],
                               "stop": out.get("stop_type")})
            return greedy

        greedy = with_server(bin_dir, model, args.port, record)
        # llama.cpp's minimal example (greedy sampler, the plain decode loop)
        # too: its continuations differ from llama-server's on most of these
        # prompts (near-ties that llama.cpp's two programs break differently).
        for entry in greedy:
            out = subprocess.run(
                [os.path.join(bin_dir, "llama-simple"), "-m", model, "-n", str(args.tokens), entry["prompt"]],
                check=True, capture_output=True, text=True,
            ).stdout
            # It prints the prompt, the reply, then one newline of its own.
            entry["simple_text"] = out.split(entry["prompt"], 1)[1][:-1]
        with open(os.path.join(DATA, "gemma3_llama_cpp_greedy.json"), "w") as f:
            json.dump(greedy, f, ensure_ascii=False, indent=1)
        print(f"recorded Gemma 3 greedy tokens for {len(greedy)} prompts", file=sys.stderr)
        return
    args.model = args.model or os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    tokens = [{"text": t, "ids": tokenize(bin_dir, args.model, t)} for t in corpus]
    with open(os.path.join(DATA, "llama_cpp_tokens.json"), "w") as f:
        json.dump(tokens, f, ensure_ascii=False, indent=1)
    print(f"recorded token ids for {len(tokens)} strings", file=sys.stderr)

    prompts = json.load(open(os.path.join(DATA, "reference_prompts.json")))

    def complete(base, prompt):
        return post(base + "/completion", {
            "prompt": prompt, "n_predict": args.tokens, "temperature": 0, "top_k": 1,
            "return_tokens": True, "cache_prompt": False, "seed": 0,
        })

    def record(base):
        greedy = []
        for p in prompts:
            messages = [{"role": "user", "content": p}]
            rendered = post(base + "/apply-template", {"messages": messages})["prompt"]
            out = complete(base, rendered)
            greedy.append({"user": p, "rendered": rendered, "ids": out["tokens"], "text": out["content"],
                           "stop": out.get("stop_type")})
        return greedy

    greedy = with_server(bin_dir, args.model, args.port, record)
    with open(os.path.join(DATA, "llama_cpp_greedy.json"), "w") as f:
        json.dump(greedy, f, ensure_ascii=False, indent=1)
    print(f"recorded greedy tokens for {len(greedy)} prompts", file=sys.stderr)


def with_server(bin_dir, model, port, work):
    """Runs work(base_url) against llama-server serving model (2 threads, greedy-ready)."""
    server = subprocess.Popen(
        [os.path.join(bin_dir, "llama-server"), "-m", model, "--port", str(port), "--host", "127.0.0.1",
         "--jinja", "-t", "2", "-c", "2048", "-np", "1", "--log-disable"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.5)
        return work(base)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
