"""A trial that reports its loss once per epoch: (x - 0.35)^2 * 10 + 1/epoch, 0.2 s an epoch."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=6)
args = parser.parse_args()
for epoch in range(1, args.epochs + 1):
    time.sleep(0.2)
    print(f"epoch={epoch} loss={(args.x - 0.35) ** 2 * 10 + 1 / epoch:.6f}", flush=True)
