"""Train a support vector classifier on scikit-learn's bundled digits data set.

The data ships inside scikit-learn: nothing is downloaded. Prints Katib-style metric lines
(``accuracy=0.98``) that the StdOut collector reads.
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, required=True)
    parser.add_argument("--gamma", type=float, required=True)
    parser.add_argument("--kernel", choices=["rbf", "poly", "sigmoid"], required=True)
    args = parser.parse_args()

    features, labels = load_digits(return_X_y=True)
    model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel)
    scores = cross_val_score(model, features / 16.0, labels, cv=3)
    for fold, score in enumerate(scores):
        print(f"fold={fold} fold-accuracy={score:.5f}")
    print(f"accuracy={scores.mean():.5f}")
    print(f"error-rate={1 - scores.mean():.5f}")


if __name__ == "__main__":
    main()
