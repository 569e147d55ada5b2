"""A trial that takes a moment and reports loss = (x - 0.3)^2."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
args = parser.parse_args()
time.sleep(1.5)
print(f"loss={(args.x - 0.3) ** 2}")
