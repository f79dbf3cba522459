#!/usr/bin/env python3
"""Plots for exitrl runs (matplotlib, PNG).

  plot.py eval EVAL.json OUT.png              score against self-improvement step, one line per run
  plot.py metrics METRICS.jsonl OUT.png KEYS  the given comma-separated keys against step/iteration
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_eval(path, out):
    with open(path) as f:
        data = json.load(f)
    runs = data["runs"]
    diag = all("improved" in r for r in runs)
    fig, axes = plt.subplots(1, 2 if diag else 1, figsize=(11 if diag else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for i, run in enumerate(runs):
        label = run["run"].rstrip("/").split("/")[-1]
        if run.get("train_mean_depth") is not None:
            label += f" (train depth {run['train_mean_depth']:.2f})"
        ax.plot(range(len(run["score"])), run["score"], marker="o", ms=3, label=label, color=f"C{i}")
    ax.set_xlabel("self-improvement step k")
    ax.set_ylabel(f"held-out score (avg@{runs[0]['samples']})")
    ax.set_title(f"{runs[0]['task']}: score vs step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if diag:  # how attempts change from step k-1 to k: reward up (solid), down (dashed), copies (dotted);
        # for 0/1 rewards "up" is wrong->right and "down" right->wrong
        ax = axes[0, 1]
        for i, run in enumerate(runs):
            ks = range(1, len(run["score"]))
            name = run["run"].rstrip("/").split("/")[-1]
            ax.plot(ks, run["improved"][1:], color=f"C{i}", label=f"{name} score up")
            ax.plot(ks, run["worse"][1:], color=f"C{i}", ls="--", label=f"{name} score down")
            ax.plot(ks, run["copy_rate"][1:], color=f"C{i}", ls=":", label=f"{name} copies")
        ax.set_xlabel("self-improvement step k")
        ax.set_ylabel("share of chains")
        ax.set_title("step k vs step k-1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def plot_metrics(path, out, keys):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.2 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        xs = [r.get("step", r.get("iteration")) for r in rows if r.get(key) is not None]
        ys = [r[key] for r in rows if r.get(key) is not None]
        ax.plot(xs, ys)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step / iteration")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv):
    if len(argv) >= 3 and argv[0] == "eval":
        plot_eval(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "metrics":
        plot_metrics(argv[1], argv[2], argv[3].split(","))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
