#!/usr/bin/env python3
"""Adds up meson test logs (JSON lines) and prints the closing 'N passed, N failed, N skipped' line.

An argument that is not a file (e.g. 'build-failed') counts as one failure: a stage that could not
even build must not look green."""
import json
import os
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    if not os.path.isfile(path):
        print(f"stage without results: {path}")
        failed += 1
        continue
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            result = t.get("result", "")
            name = f'{os.path.basename(os.path.dirname(os.path.dirname(path)))}:{t.get("name")}'
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
                reason = (t.get("stdout") or "").strip().splitlines()[-1:] or ["no reason given"]
                print(f"skipped {name}: {reason[0]}")
            else:
                failed += 1
                print(f"FAILED {name}: {result}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
