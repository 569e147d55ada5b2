"""A trial whose outcome is scripted by its trial number, to test the loop's mechanics.

Trial 1 fails (exit 3), trial 4 prints no objective (MetricsUnavailable), and otherwise
the loss is 10 - number, so the goal (loss <= 5) is first met by trial 5. Each trial sleeps
long enough for parallel trials to overlap visibly.
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--sleep", type=float, default=1.0)
args = parser.parse_args()
number = int(os.environ["HPO_KFP_TRIAL_NAME"].rsplit("-", 1)[1])
time.sleep(args.sleep)
if number == 1:
    print("simulated crash", file=sys.stderr)
    sys.exit(3)
if number == 4:
    print("finished, but forgot to print the metric")
    sys.exit(0)
print(f"x={args.x} loss={10 - number}")
