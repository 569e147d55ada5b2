"""The trial of unequal_trials.py: sleep the duration listed for its number, print ``loss=``.

Its number comes from ``--number`` or, under hpo-kfp, from ``HPO_KFP_TRIAL_NAME``
(``<experiment>-NNNN``); ``--durations`` is a JSON list of seconds per trial number. Each run
appends ``{"number", "start", "end"}`` (wall-clock seconds) to ``--log``, from which the
scheduling floor is computed. Standard library only.
"""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, required=True)
parser.add_argument("--durations", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--number", type=int)
args = parser.parse_args()
number = args.number if args.number is not None else int(os.environ["HPO_KFP_TRIAL_NAME"].rsplit("-", 1)[1])
with open(args.durations, encoding="utf-8") as stream:
    durations = json.load(stream)
start = time.time()
time.sleep(durations[number % len(durations)])
end = time.time()
with open(args.log, "a", encoding="utf-8") as stream:
    stream.write(json.dumps({"number": number, "start": start, "end": end}) + "\n")
print(f"loss={(args.x - 1) ** 2 + (args.y + 2) ** 2:.6f}", flush=True)
