#!/usr/bin/env python3
"""The self-improvement study: the paper's Table 1 on exitrl's domains (issue 15).

For each domain and seed: a warm start (exitrl pretrain on teacher demonstrations), then each RL
method of the ladder from it (exitrl train --method grpo|curriculum|improve|diverge|exit), then the
multi-step evaluation of every policy (exitrl eval, K steps on held-out instances). Every run
writes into its own folder under --runs (default runs/study); a run that finished (its DONE file,
or its eval JSON) is not run again, so the study resumes where it stopped (an interrupted run is
started over). The table is made from whatever evaluations exist.

  tools/study.py run   [--domains arith,countdown,knapsack] [--seeds 1,2,3] [--methods ...] [--jobs 2]
  tools/study.py table [--out docs/results]        -> table1.json, table1.md, table1.png
  tools/study.py plan                              what is done, what is left, an estimate

Cost on 2 CPU cores (tiny model, --jobs 2, one core per job, measured 2026-12-07 on an Intel Xeon
with exitrl choosing OpenBLAS's SkylakeX kernels): a warm start 5-7 min (countdown's 3000 steps:
9 min), grpo or curriculum (300 iterations) 1-2 min, improve / diverge / exit 1.6-3.4 min, an
evaluation (K = 16, 640 x 4 chains) 1-3.5 min; the knapsack ladder (3 seeds x 6 policies) took 65
minutes, the countdown ladder 55 minutes, and the whole study
(3 domains) is ~3 hours, to be spread over sittings (it resumes). `plan` prints the estimate for
what is left.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["grpo", "curriculum", "improve", "diverge", "exit"]
MARKS = [0, 1, 2, 4, 8, 16]

# One entry per domain: the warm start, RL and evaluation settings (exitrl config keys). The model,
# optimiser and batch sizes come from configs/tiny_cpu.conf and configs/tiny_cpu_exit.conf.
DOMAINS = {
    # ops=2: ~10^3 held-out problems (ops=1 has 18, and its 282 training problems are memorised).
    "arith": {"task_knobs": "ops=2", "feedback": 0, "max_new_tokens": 8},
    # countdown's warm start: twice the steps and twice the share of improve demonstrations of WARM
    # (1500 steps at 0.25 left a warm start that breaks a third of its right answers; docs/results/diagnosis.md).
    "countdown": {"task_knobs": "", "feedback": 1, "max_new_tokens": 24, "warm": {"steps": 3000, "demo_p_improve": 0.5}},
    "knapsack": {"task_knobs": "", "feedback": 1, "max_new_tokens": 16},
}
WARM = {"steps": 1500, "demo_targets": "improve", "demo_p_shown_correct": 0.5}
RL = {"iterations": 300, "eval_every": 0, "ckpt_every": 100}
# 1024 x 4 chains, so that the largest standard error of a score (clustered over instances) is about
# 0.0095 or less: 640 x 4 gave 0.0092-0.0120 (docs/results/table1.md, max se), and it falls as
# 1 / sqrt(instances). An evaluation whose JSON has other settings counts as not done (`run` redoes it).
EVAL = {"eval_steps": 16, "eval_instances": 1024, "eval_samples": 4, "temperature": 0.6}
# Estimated minutes per job on one core (for `plan`).
MINUTES = {"warm": 6, "rl": 3, "eval": 4}


EXE = None  # --exe: the exitrl binary (default build-cpu/exitrl; a copy lets you rebuild while the study runs)


def exitrl():
    path = EXE or os.path.join(ROOT, "build-cpu", "exitrl")
    if not os.access(path, os.X_OK):
        sys.exit(f"study: {path} not found; build it first: cmake --preset cpu && cmake --build --preset cpu")
    return path


def keys(d):
    out = []
    for k, v in d.items():
        out += [f"--{k}", str(v)]
    return out


def run_dir(runs, domain, seed, name):
    return os.path.join(runs, domain, f"seed{seed}", name)


RUNNING = set()  # exitrl processes in flight, stopped with the study (each saves a checkpoint)


def stop_children(signum, frame):
    for proc in list(RUNNING):
        proc.terminate()
    sys.exit(128 + signum)


def job_done(job):
    if job["kind"] != "eval":
        return os.path.exists(job["done"])
    try:  # an evaluation is done when its JSON has the current EVAL settings
        e = load_eval(job["done"])
    except (OSError, ValueError, KeyError, IndexError):
        return False
    return (e["instances"], e["samples"], e["K"]) == (EVAL["eval_instances"], EVAL["eval_samples"], EVAL["eval_steps"])


# exitrl writes checkpoint.bin every ckpt_every steps, so a run counts as finished only when this
# file, written after the command exited 0, is there.
DONE = "DONE"


def run_job(job):
    """Runs one exitrl command; its output folder is rebuilt from scratch (a half-written run from
    an interrupted sitting is discarded). Returns (job, seconds, error or None)."""
    out_dir = job["dir"]
    if job["kind"] != "eval" and os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(os.path.dirname(job["done"]), exist_ok=True)
    t0 = time.time()
    log_path = job["done"] + ".log" if job["kind"] == "eval" else out_dir + ".log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(job["cmd"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        RUNNING.add(proc)
        rc = proc.wait()
        RUNNING.discard(proc)
    if rc != 0 or (job["kind"] == "eval" and not os.path.exists(job["done"])):
        return job, time.time() - t0, f"exit code {rc}; see {log_path}"
    if job["kind"] != "eval":
        with open(job["done"], "w") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {time.time() - t0:.0f} s\n")
    return job, time.time() - t0, None


def plan_jobs(runs, domains, seeds, methods):
    """Jobs in dependency order: warm starts, RL runs, evaluations."""
    exe = exitrl()
    warm, rl, ev = [], [], []
    for domain in domains:
        dom = DOMAINS[domain]
        for seed in seeds:
            wdir = run_dir(runs, domain, seed, "warm")
            common = ["--task", domain, "--task_knobs", dom["task_knobs"], "--seed", str(seed), "--threads", "1",
                      "--progress", "0"]
            warm.append({"kind": "warm", "dir": wdir, "done": os.path.join(wdir, DONE), "after": None,
                         "cmd": [exe, "pretrain", "--config", "configs/tiny_cpu.conf", *common,
                                 *keys({**WARM, **dom.get("warm", {})}),
                                 "--out_dir", os.path.dirname(wdir), "--name", "warm"]})
            policies = [wdir]
            for m in methods:
                rdir = run_dir(runs, domain, seed, m)
                rl.append({"kind": "rl", "dir": rdir, "done": os.path.join(rdir, DONE), "after": os.path.join(wdir, DONE),
                           "cmd": [exe, "train", "--config", "configs/tiny_cpu_exit.conf", *common, "--method", m,
                                   "--init", os.path.join(wdir, "checkpoint.bin"), "--feedback", str(dom["feedback"]),
                                   "--max_new_tokens", str(dom["max_new_tokens"]), *keys(RL),
                                   "--out_dir", os.path.dirname(rdir), "--name", m]})
                policies.append(rdir)
            for p in policies:
                out = os.path.join(p + "_eval.json")
                ev.append({"kind": "eval", "dir": p, "done": out, "after": os.path.join(p, DONE),
                           "cmd": [exe, "eval", "--runs", p, "--out", out, *common, "--feedback", str(dom["feedback"]),
                                   "--max_new_tokens", str(dom["max_new_tokens"]), *keys(EVAL)]})
    return warm + rl + ev


def cmd_plan(args):
    jobs = plan_jobs(args.runs, args.domains, args.seeds, args.methods)
    left = [j for j in jobs if not job_done(j)]
    minutes = sum(MINUTES[j["kind"]] for j in left) / max(1, args.jobs)
    print(f"study: {len(jobs) - len(left)} of {len(jobs)} jobs done; {len(left)} left, about {minutes / 60:.1f} h "
          f"with --jobs {args.jobs}")
    for kind in ("warm", "rl", "eval"):
        n = sum(1 for j in left if j["kind"] == kind)
        if n:
            print(f"  {kind}: {n} left")
    return 0


def cmd_run(args):
    signal.signal(signal.SIGINT, stop_children)
    signal.signal(signal.SIGTERM, stop_children)
    jobs = plan_jobs(args.runs, args.domains, args.seeds, args.methods)
    pending = [j for j in jobs if not job_done(j)]
    print(f"study: {len(jobs) - len(pending)} of {len(jobs)} jobs already done; running {len(pending)} "
          f"with {args.jobs} at a time (outputs under {args.runs})", flush=True)
    failed = 0
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running = {}
        while pending or running:
            # Evaluations first: a finished policy's row reaches the table before new runs start.
            ready = sorted((j for j in pending if j["after"] is None or os.path.exists(j["after"])),
                           key=lambda j: j["kind"] != "eval")
            blocked_forever = not running and not ready
            if blocked_forever:
                print(f"study: {len(pending)} jobs wait on runs that failed", flush=True)
                break
            while ready and len(running) < args.jobs:
                j = ready.pop(0)
                pending.remove(j)
                print(f"study: start {j['kind']:5s} {os.path.relpath(j['done'], args.runs)}", flush=True)
                running[pool.submit(run_job, j)] = j
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in done:
                j, secs, err = f.result()
                del running[f]
                if err:
                    failed += 1
                    print(f"study: FAILED {j['kind']} {j['dir']}: {err}", flush=True)
                else:
                    print(f"study: done  {j['kind']:5s} {os.path.relpath(j['done'], args.runs)} in {secs / 60:.1f} min",
                          flush=True)
    return 1 if failed else 0


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s, len(xs)


def load_eval(path):
    with open(path) as f:
        runs = json.load(f)["runs"]
    return runs[0]


def cmd_table(args):
    rows = []
    for domain in args.domains:
        for policy in ["warm"] + args.methods:
            evals = []
            for seed in args.seeds:
                p = run_dir(args.runs, domain, seed, policy) + "_eval.json"
                if os.path.exists(p):
                    evals.append(load_eval(p))
            if not evals:
                continue
            K = evals[0]["K"]
            row = {"domain": domain, "policy": policy, "seeds": len(evals), "K": K,
                   "instances": evals[0]["instances"], "samples": evals[0]["samples"]}
            for k in MARKS:
                if k <= K:
                    row[f"score_{k}"] = mean_std([e["score"][k] for e in evals])[:2]
            row["delta_K"] = mean_std([e["score"][K] - e["score"][0] for e in evals])[:2]
            row["net_corrections"] = mean_std([e["net_corrections_total"] for e in evals])[:2]
            row["max_se"] = max(max(e.get("score_se", [0])) for e in evals)
            for key in ("right_wrong", "wrong_right", "improved", "worse", "copy_rate"):
                if all(key in e for e in evals):
                    row[key] = mean_std([sum(e[key][1:]) / K for e in evals])[:2]
            depth = mean_std([e.get("train_mean_depth") for e in evals])
            row["train_depth"] = depth[:2] if depth[2] else None
            if depth[2]:  # the score at the mean training depth (rounded up), for gains past it
                kd = min(K, math.ceil(depth[0]))
                row["depth_k"] = kd
                row["score_at_depth"] = mean_std([e["score"][kd] for e in evals])[:2]
            row["curve"] = [mean_std([e["score"][k] for e in evals])[0] for k in range(K + 1)]
            # What the policy does after each verdict of the verifier (exitrl eval's by_feedback).
            classes = [c["feedback"] for c in evals[0].get("by_feedback", [])]
            row["by_feedback"] = []
            for name in classes:
                found = [c for e in evals for c in e.get("by_feedback", []) if c["feedback"] == name]
                if len(found) == len(evals):
                    row["by_feedback"].append({"feedback": name, **{
                        key: mean_std([c[key] for c in found])[:2]
                        for key in ("share", "improved", "worse", "copy_rate", "right_wrong", "wrong_right")}})
            rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    found = sorted({r["instances"] for r in rows}) # what the evaluations used, which EVAL may not be yet
    meta = {"warm": WARM, "rl": RL, "eval": {**EVAL, "eval_instances": found[0] if len(found) == 1 else found},
            "domains": {d: DOMAINS[d] for d in args.domains},
            "seeds": args.seeds, "runs": args.runs}
    with open(os.path.join(args.out, "table1.json"), "w") as f:
        json.dump({"settings": meta, "rows": rows}, f, indent=1)
    write_markdown(os.path.join(args.out, "table1.md"), rows, meta)
    write_png(os.path.join(args.out, "table1.json"), os.path.join(args.out, "table1.png"))
    print(f"study: {len(rows)} rows -> {args.out}/table1.{{json,md,png}}")
    return 0


def fmt(ms, signed=False, one=False):
    """mean ± std over seeds; the mean alone for a single seed."""
    if not ms or ms[0] is None:
        return "-"
    m, s = ms
    text = f"{m:+.3f}" if signed else f"{m:.3f}"
    return text if one else f"{text} ± {s:.3f}"


def write_markdown(path, rows, meta):
    e = meta["eval"]
    shapes = " or ".join(sorted({f"{r['instances']} held-out instances x {r['samples']} chains" for r in rows}))
    lines = ["# Table 1 analog: multi-step self-improvement on held-out instances", "",
             "Written by `tools/study.py table` from the evaluations under "
             f"`{meta['runs']}`; mean ± std over seeds. Each evaluation: {shapes}, K = {e['eval_steps']}, "
             f"temperature {e['temperature']}. "
             "Delta_K = score(K) - score(0); net corrections = sum over steps of (wrong->right - right->wrong) per "
             "chain; R->W, W->R (reward 1 lost / reached), up, down (reward rose / fell) and copies are per-step "
             "shares averaged over the K steps; max se is the largest "
             "standard error (over instances) of any score in the row's evaluations.", ""]
    header = ["domain", "policy", "seeds"] + [f"k={k}" for k in MARKS] + \
        ["Delta_K", "net corr.", "R->W", "W->R", "up", "down", "copies", "train depth", "score at depth", "max se"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        one = r["seeds"] == 1
        cells = [r["domain"], r["policy"], str(r["seeds"])]
        cells += [fmt(r.get(f"score_{k}"), one=one) for k in MARKS]
        cells += [fmt(r["delta_K"], True, one), fmt(r["net_corrections"], True, one)]
        cells += [fmt(r.get(key), one=one) for key in ("right_wrong", "wrong_right", "improved", "worse", "copy_rate")]
        cells += [fmt(r["train_depth"], one=one) if r.get("train_depth") else "-",
                  f"k={r['depth_k']}: {fmt(r['score_at_depth'], one=one)}" if r.get("depth_k") is not None else "-",
                  f"{r['max_se']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## What each policy does after each verdict", "",
              "Steps 1..K pooled and split by the feedback on the previous attempt (digits as #): the share of "
              "steps with that verdict, then the shares of those steps whose reward rose (up) or fell (down), that "
              "copied the attempt, that lost a reward of 1 (R->W) or reached it (W->R).", ""]
    header = ["domain", "policy", "feedback on the previous attempt", "share", "up", "down", "copies", "R->W", "W->R"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        one = r["seeds"] == 1
        for c in r.get("by_feedback", []):
            cells = [r["domain"], r["policy"], f"`{c['feedback']}`"]
            cells += [fmt(c[key], one=one) for key in ("share", "improved", "worse", "copy_rate", "right_wrong", "wrong_right")]
            lines.append("| " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_png(json_path, png_path):
    """Draws the score curves of table1.json; where this python has no matplotlib, asks another one
    ($EXITRL_PYTHON, then Debian's /usr/bin/python3) to run `study.py png`."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        for py in (os.environ.get("EXITRL_PYTHON"), "/usr/bin/python3"):
            if py and os.path.realpath(py) != os.path.realpath(sys.executable) and os.access(py, os.X_OK):
                if subprocess.call([py, os.path.abspath(__file__), "png", "--json", json_path, "--png", png_path]) == 0:
                    return
        print("study: no PNG (python3 with matplotlib is needed; Debian: apt-get install python3-matplotlib)")
        return
    draw_png(json_path, png_path)


def draw_png(json_path, png_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(json_path) as f:
        rows = json.load(f)["rows"]
    domains = sorted({r["domain"] for r in rows})
    fig, axes = plt.subplots(1, len(domains), figsize=(5 * len(domains), 3.8), squeeze=False)
    for ax, d in zip(axes[0], domains):
        for i, r in enumerate([r for r in rows if r["domain"] == d]):
            ax.plot(range(len(r["curve"])), r["curve"], marker="o", ms=2, color=f"C{i}",
                    label=f"{r['policy']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})")
        ax.set_title(d)
        ax.set_xlabel("self-improvement step k")
        ax.set_ylabel("held-out score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "table", "plan", "png"])
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--png", help=argparse.SUPPRESS)
    ap.add_argument("--domains", default="arith,countdown,knapsack")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2: one per core)")
    ap.add_argument("--runs", default=os.path.join(ROOT, "runs", "study"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
    ap.add_argument("--exe", help="the exitrl binary to run (default build-cpu/exitrl)")
    args = ap.parse_args()
    global EXE
    EXE = args.exe
    if args.command == "png":  # internal: table's drawing step, run by a python that has matplotlib
        draw_png(args.json, args.png)
        return 0
    args.domains = [d for d in args.domains.split(",") if d]
    for d in args.domains:
        if d not in DOMAINS:
            ap.error(f"unknown domain '{d}' (known: {', '.join(DOMAINS)})")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got '{args.seeds}'")
    args.methods = [m for m in args.methods.split(",") if m]
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"unknown method '{m}' (known: {', '.join(METHODS)})")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    return {"run": cmd_run, "table": cmd_table, "plan": cmd_plan}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
