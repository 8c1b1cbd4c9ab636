#!/usr/bin/env python3
"""Checks every relative link of the README and of docs/*.md (run by `make lint`): each
must name a file of the repository, and a `#fragment` a heading of that file. Exit
status 1 with the broken links printed."""

import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT  # noqa: E402


def anchors(path):
    """The GitHub anchors of a Markdown file's headings."""
    found = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#+\s+(.*)", line)
            if m:
                text = re.sub(r"[`*_]", "", m.group(1)).strip().lower()
                found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return found


def main():
    pages = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    broken, checked = [], 0
    for page in pages:
        with open(page, encoding="utf-8") as f:
            text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            checked += 1
            path, _, fragment = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            where = os.path.relpath(page, ROOT)
            if not os.path.exists(full):
                broken.append(f"{where}: {target} (no such file)")
            elif fragment and full.endswith(".md") and fragment not in anchors(full):
                broken.append(f"{where}: {target} (no such heading)")
    for b in broken:
        print("broken link: " + b)
    if broken:
        sys.exit(1)
    print(f"links: {checked} relative links of {len(pages)} pages, none broken")


if __name__ == "__main__":
    main()
