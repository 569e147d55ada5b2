"""A trial that writes its process id to ``--pid-file`` and then sleeps for a long time."""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--pid-file", required=True)
args = parser.parse_args()
with open(args.pid_file, "a", encoding="utf-8") as stream:
    stream.write(f"{os.getpid()}\n")
time.sleep(600)
print(f"loss={args.x}")
