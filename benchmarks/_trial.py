"""The trial every side of loop_overhead.py runs: sleep ``--seconds``, print ``loss=...``.

loss = (x - 1)^2 + (y + 2)^2. Standard library only, so its own start-up is small and the
same for every side.
"""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, required=True)
parser.add_argument("--seconds", type=float, default=0.0)
args = parser.parse_args()
time.sleep(args.seconds)
print(f"loss={(args.x - 1) ** 2 + (args.y + 2) ** 2:.6f}", flush=True)
