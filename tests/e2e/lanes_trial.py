"""A trial whose behaviour is scripted by its number, to test the asynchronous lanes.

Trial 0 waits until trial 2 has run (a file trial 2 writes), so it can only finish if a lane
starts trial 2 while trial 0 is still running: with synchronous rounds of 2 it never would.
``--goal-at N``: trial N reports loss 0 (the goal), every other trial loss 10.
``--slow-first S``: the first trial of each pair (even numbers) sleeps S seconds first.
``--epochs E``: a resource for Hyperband; the loss falls with it.
"""

import argparse
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--wait-for-2", action="store_true")
parser.add_argument("--goal-at", type=int, default=-1)
parser.add_argument("--slow-first", type=float, default=0.0)
parser.add_argument("--epochs", type=int, default=0)
args = parser.parse_args()
number = int(os.environ["HPO_KFP_TRIAL_NAME"].rsplit("-", 1)[1])
if number % 2 == 0:
    time.sleep(args.slow_first)
flag = Path("trial-2-ran")
if args.wait_for_2 and number == 0:
    deadline = time.monotonic() + 120
    while not flag.exists():
        if time.monotonic() > deadline:
            print("trial 2 never ran while trial 0 waited", file=sys.stderr)
            sys.exit(4)
        time.sleep(0.05)
if number == 2:
    flag.write_text("yes")
print(f"loss={0 if number == args.goal_at else 10 + args.x - args.epochs / 100}")
