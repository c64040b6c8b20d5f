#!/usr/bin/env python3
"""Writes N members in c7sync's CSV format (email,oid,display_name) to a file.

Usage: gen_members.py N OUT [--seed S]
Object ids are random GUIDs (as Entra's are), so rows arrive unsorted, as in real exports.
"""
import random
import sys
import uuid


def main() -> None:
    count, out = int(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 7
    rng = random.Random(seed)
    with open(out, "w", newline="") as f:
        f.write("email,oid,display_name\n")
        for i in range(count):
            oid = uuid.UUID(int=rng.getrandbits(128), version=4)
            f.write(f"developer{i}@contoso-engineering.com,{oid},Developer Number {i}\n")


if __name__ == "__main__":
    main()
