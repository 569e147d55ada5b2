"""The trial every side of loop_overhead.py runs: sleep ``--seconds``, print ``loss=...``.

loss = (x - 1)^2 + (y + 2)^2. Standard library only, so its own start-up is small and the
same for every side. With ``--log FILE`` it also appends ``{"name", "start", "end"}`` (its
sleep's wall-clock start and end, and ``HPO_KFP_TRIAL_NAME`` under hpo-kfp) to FILE.
"""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, required=True)
parser.add_argument("--seconds", type=float, default=0.0)
parser.add_argument("--log", default=None, help="append this run's start and end times (JSON line) here")
args = parser.parse_args()
start = time.time()
time.sleep(args.seconds)
if args.log:
    import json  # only when logging: the default run imports what it always did

    with open(args.log, "a", encoding="utf-8") as stream:
        record = {"name": os.environ.get("HPO_KFP_TRIAL_NAME"), "start": start, "end": time.time()}
        stream.write(json.dumps(record) + "\n")
print(f"loss={(args.x - 1) ** 2 + (args.y + 2) ** 2:.6f}", flush=True)
