"""The trial of early_stopping.py: trains for ``--epochs`` epochs of 0.1 s and reports the
loss after each. loss = (log10(lr) + 2)^2 + 4 (momentum - 0.7)^2 + 2 / epoch."""

import argparse
import math
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--momentum", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
args = parser.parse_args()
final = (math.log10(args.lr) + 2) ** 2 + 4 * (args.momentum - 0.7) ** 2
for epoch in range(1, args.epochs + 1):
    time.sleep(0.1)
    print(f"epoch={epoch} loss={final + 2 / epoch:.6f}", flush=True)
