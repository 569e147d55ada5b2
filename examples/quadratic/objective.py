"""A synthetic objective with a known optimum: instant trials for trying hpo-kfp out.

loss = (x - 1)^2 + (y + 2)^2 + 0.1 * [optimizer penalty]; the minimum is 0 at x=1, y=-2,
optimizer=adam. It reports the loss once per "epoch", improving towards its final value,
so the series and metric strategies have something to show.
"""

from __future__ import annotations

import argparse
import time

_PENALTY = {"adam": 0.0, "sgd": 0.1, "rmsprop": 0.05}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, required=True)
    parser.add_argument("--optimizer", choices=sorted(_PENALTY), required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.0, help="pretend to train this long")
    args = parser.parse_args()

    final = (args.x - 1) ** 2 + (args.y + 2) ** 2 + _PENALTY[args.optimizer]
    for epoch in range(1, args.epochs + 1):
        time.sleep(args.seconds / args.epochs)
        print(f"epoch={epoch} loss={final * (1 + (args.epochs - epoch) / args.epochs):.6f}", flush=True)


if __name__ == "__main__":
    main()
