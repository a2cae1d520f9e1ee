#!/usr/bin/env python3
"""`make bench`: Wick's engine and llama.cpp on the same GGUF, the same thread
count and the same work (a P-token prompt, then N generated tokens), run side by
side in one go; medians of R runs; peak resident memory of each process.

Usage: scripts/bench.py --wick target/release/wick --llama-bin DIR [--threads 2] [-p 200] [-n 128] [-r 3]
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def run_measured(cmd):
    """Runs cmd; returns (stdout, stderr, peak RSS in MiB) using a fresh `time -v`."""
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{out.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return out.stdout, out.stderr, rss_kb / 1024


def prompt_of(tokens):
    # Plain prose, about one token per word for this tokenizer; trimmed by Wick's count below.
    words = ("the river runs past old stone houses and quiet gardens where people sit in the evening sun " * 40).split()
    return " ".join(words[:tokens])


def wick(args, prompt_text):
    cmd = [args.wick, "generate", "--model", args.model, "--raw", "--prompt", prompt_text, "--temperature", "0",
           "--max-new-tokens", str(args.n), "--ignore-eos", "--threads", str(args.threads)]
    _, err, rss = run_measured(cmd)
    m = re.search(r"prompt: (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\); decode: (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\)", err)
    return int(m.group(1)), float(m.group(2)), int(m.group(3)), float(m.group(4)), rss


def llama(args, prompt_tokens):
    """llama.cpp on the same work as Wick: the prompt from an empty context, then
    decoding after that prompt (llama-bench's depth), so both attend over the same
    positions. Returns (prompt tok/s, decode tok/s, peak RSS of the larger run)."""
    bench = [os.path.join(args.llama_bin, "llama-bench"), "-m", args.model, "-t", str(args.threads),
             "-r", "1", "-o", "json"]
    out, _, rss_pp = run_measured(bench + ["-p", str(prompt_tokens), "-n", "0"])
    pp = json.loads(out)[0]["avg_ts"]
    out, _, rss_tg = run_measured(bench + ["-p", "0", "-n", str(args.n), "-d", str(prompt_tokens)])
    tg = json.loads(out)[0]["avg_ts"]
    return pp, tg, max(rss_pp, rss_tg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wick", default=os.path.join(ROOT, "target", "release", "wick"))
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-p", type=int, default=200)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    args = ap.parse_args()

    prompt_text = prompt_of(args.p)
    w, l = [], []
    for i in range(args.r):
        # Alternate the engines so that drift on a noisy machine hits both alike.
        w.append(wick(args, prompt_text))
        prompt_tokens = w[-1][0]
        l.append(llama(args, prompt_tokens))
        print(f"run {i + 1}/{args.r}: wick pp {w[-1][1]:.1f} tg {w[-1][3]:.1f}; "
              f"llama.cpp pp {l[-1][0]:.1f} tg {l[-1][1]:.1f}", file=sys.stderr)

    med = statistics.median
    w_pp, w_tg, w_rss = med(r[1] for r in w), med(r[3] for r in w), max(r[4] for r in w)
    l_pp, l_tg, l_rss = med(r[0] for r in l), med(r[1] for r in l), max(r[2] for r in l)
    print(f"\nmodel {os.path.basename(args.model)}, {args.threads} threads, prompt {w[0][0]} tokens, "
          f"{args.n} new tokens, medians of {args.r}")
    print("| engine | prompt tok/s | decode tok/s | peak RSS |")
    print("|---|---|---|---|")
    print(f"| llama.cpp | {l_pp:.1f} | {l_tg:.1f} | {l_rss:.0f} MiB |")
    print(f"| Wick | {w_pp:.1f} | {w_tg:.1f} | {w_rss:.0f} MiB |")
    print(f"| **Wick / llama.cpp** | **{w_pp / l_pp:.2f}x** | **{w_tg / l_tg:.2f}x** | {w_rss / l_rss:.2f}x |")


if __name__ == "__main__":
    main()
