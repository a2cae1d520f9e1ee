#!/usr/bin/env python3
"""`make page-weight` (part of `make bench`): what a browser downloads on a
conversation page's first load — the site's wasm, JavaScript and CSS from
`target/site/pkg` (the HTML itself is left out: it is the page's content) —
raw and gzip-compressed (level 6, what Wick's compression layer uses by
default), against the budget of 250 KB gzip. Only the standard library is used.

Usage: scripts/page_weight.py [--site target/site]
"""
import argparse
import gzip
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_KB = 250
KINDS = ["wasm", "js", "css"]


def site_files(root):
    """The file names of the wasm, JS and CSS: hashed as target/release/hash.txt
    lists them (a release build), else the plain names."""
    hashes = {}
    listing = os.path.join(root, "target", "release", "hash.txt")
    if os.path.exists(listing):
        for line in open(listing):
            kind, _, value = line.strip().partition(":")
            if value:
                hashes[kind] = value.strip()
    return [f"wick.{hashes[k]}.{k}" if k in hashes else f"wick.{k}" for k in KINDS]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", default=os.path.join(ROOT, "target", "site"))
    args = ap.parse_args()
    rows = []
    for name in site_files(ROOT):
        path = os.path.join(args.site, "pkg", name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make build` first")
        data = open(path, "rb").read()
        rows.append((name, len(data), len(gzip.compress(data, compresslevel=6))))
    total_raw = sum(r[1] for r in rows)
    total_gz = sum(r[2] for r in rows)
    print("| file | raw | gzip |")
    print("|---|---|---|")
    for name, raw, gz in rows:
        shown = "wick." + name.rsplit(".", 1)[-1]
        print(f"| {shown} | {raw / 1000:.1f} KB | {gz / 1000:.1f} KB |")
    print(f"| **first load** | {total_raw / 1000:.1f} KB | **{total_gz / 1000:.1f} KB** (budget {BUDGET_KB} KB) |")


if __name__ == "__main__":
    main()
