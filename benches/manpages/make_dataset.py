#!/usr/bin/env python3
"""A real-text retrieval benchmark from Debian's man pages, in the BEIR layout.

    python3 benches/manpages/make_dataset.py [--out benches/models/manpages-beir]

Source: every page of the Debian packages `manpages` and `manpages-dev`
(`dpkg -L`; the package versions are recorded in the output's
dataset.json), rendered with `man --nh --nj -l` (no hyphenation or justification, MANWIDTH=100, col -bx). Pages that only
redirect (`.so`) are skipped.

- Query: the page's one-line NAME description ("open, openat, creat - open
  and possibly create a file" -> "open and possibly create a file").
- Relevant document: that page without its NAME section (judgment 1). Pages
  sharing a description form one query with all of them relevant.
- Corpus: every page, `{"_id": "open.2", "title": "open(2)", "text": ...}`.
- Splits by query (a stable hash of the description): train 80%, dev 10%,
  test 10%; qrels/{train,dev,test}.tsv.

Deterministic for a given package version. Standard library only.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess


def package_files(pkgs):
    out = subprocess.run(["dpkg", "-L", *pkgs], check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.splitlines() if re.search(r"/man/man[0-9][a-z]*/[^/]+\.[0-9][a-z]*(\.gz)?$", p) and os.path.isfile(p) and not os.path.islink(p))


def version(pkg):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], check=True, capture_output=True, text=True).stdout


def render(path):
    src = gzip.open(path, "rt", errors="replace").read() if path.endswith(".gz") else open(path, errors="replace").read()
    if src.lstrip().startswith(".so "):
        return None
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    man = subprocess.run(["man", "--nh", "--nj", "-l", path], capture_output=True, env=env)
    text = subprocess.run(["col", "-bx"], input=man.stdout, capture_output=True).stdout.decode("utf-8", "replace")
    return text


def split_sections(text):
    """[(heading, body)] of a rendered page (headings are unindented lines)."""
    sections, head, body = [], None, []
    for line in text.splitlines():
        if line and not line[0].isspace() and line.strip() == line.strip().upper() and re.match(r"^[A-Z][A-Z0-9 ,/&()-]*$", line.strip()):
            if head is not None:
                sections.append((head, "\n".join(body)))
            head, body = line.strip(), []
        elif head is not None:
            body.append(line)
    if head is not None:
        sections.append((head, "\n".join(body)))
    return sections


def squash(s):
    return re.sub(r"\s+", " ", s).strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "manpages-beir"))
    args = ap.parse_args()
    pkgs = ["manpages", "manpages-dev"]
    corpus, groups, seen = [], {}, set()
    for path in package_files(pkgs):
        text = render(path)
        if not text:
            continue
        sections = split_sections(text)
        name = next((b for h, b in sections if h == "NAME"), None)
        if name is None or " - " not in squash(name):
            continue
        names, desc = squash(name).split(" - ", 1)
        body = "\n\n".join(f"{h}\n{b.strip()}" for h, b in sections if h != "NAME")
        base = os.path.basename(path)
        base = base[:-3] if base.endswith(".gz") else base
        page, sec = base.rsplit(".", 1)
        doc_id = f"{page}.{sec}"
        if doc_id in seen:  # the same page under two paths
            continue
        seen.add(doc_id)
        corpus.append({"_id": doc_id, "title": f"{page}({sec})", "text": squash(body)})
        groups.setdefault(desc.strip().lower(), []).append(doc_id)
    os.makedirs(os.path.join(args.out, "qrels"), exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w") as f:
        for d in corpus:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    queries, qrels = [], {"train": [], "dev": [], "test": []}
    for i, (desc, docs) in enumerate(sorted(groups.items())):
        qid = "q" + hashlib.sha1(desc.encode()).hexdigest()[:10]
        bucket = int(hashlib.sha1(("split:" + desc).encode()).hexdigest(), 16) % 10
        split = "test" if bucket == 0 else "dev" if bucket == 1 else "train"
        queries.append({"_id": qid, "text": desc})
        qrels[split].extend((qid, d) for d in docs)
    with open(os.path.join(args.out, "queries.jsonl"), "w") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    for split, rows in qrels.items():
        with open(os.path.join(args.out, "qrels", f"{split}.tsv"), "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q, d in rows:
                f.write(f"{q}\t{d}\t1\n")
    meta = {"packages": {p: version(p) for p in pkgs}, "documents": len(corpus), "queries": len(queries),
            "judged": {s: len({q for q, _ in r}) for s, r in qrels.items()},
            "corpus_bytes": os.path.getsize(os.path.join(args.out, "corpus.jsonl"))}
    with open(os.path.join(args.out, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
