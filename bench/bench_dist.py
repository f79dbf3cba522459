#!/usr/bin/env python3
"""Data-parallel scaling on the CPU (issue 18): the same exitrl command as 1 process x 2 threads and
as 2 MPI ranks x 1 thread, on the same global batch, timed by the program itself (metrics.jsonl:
step_ms of pretrain, the t_* phases of a train iteration, comm_ms = the gradient all-reduce of the
2-rank run). Appends one JSONL record per (workload, layout) to bench/results/dist_cpu.jsonl.

  bench/bench_dist.py [--exe build-cpu/exitrl] [--steps 40] [--iterations 12] [--out FILE]

Workloads: pretrain (tiny model, knapsack demonstrations, batch 16 x 96) and one ExIt iteration
(tiny, knapsack with feedback, P = 16 prompts x G = 8, from a 300-step warm start made first).
The first quarter of the steps / iterations are warm-up and not counted; values are medians.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench_dist: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return p.stdout


def layout_cmd(layout, args):
    """The command line for a layout: 1x2 (one process, 2 threads) or 2x1 (2 ranks, 1 thread)."""
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    if layout == "1x2":
        env["OMP_NUM_THREADS"] = "2"
        return [args.exe], ["--threads", "2"], env
    mpi = ["mpirun", "--oversubscribe", "-np", "2", "-x", "OMP_NUM_THREADS=1", "-x", "OMP_WAIT_POLICY=passive"]
    if os.geteuid() == 0:
        mpi.append("--allow-run-as-root")
    return mpi + [args.exe], ["--threads", "1"], env


def metrics(path):
    return [json.loads(line) for line in open(path)]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def facts(args):
    info = run([args.exe, "info"])
    get = lambda key: next((l.split(": ", 1)[1] for l in info.splitlines() if l.startswith(key + ": ")), "unknown")
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return {"bench": "dist", "device": "cpu: " + cpu_name(), "backend": "cpu", "git": git or "unknown",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "blas": get("BLAS"), "mpi": get("MPI"),
            "loadavg_1m": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "build-cpu", "exitrl"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "dist_cpu.jsonl"))
    args = ap.parse_args()
    if not shutil.which("mpirun"):
        sys.exit("bench_dist: no mpirun (Debian: apt-get install openmpi-bin libopenmpi-dev)")
    if "none" in run([args.exe, "info"]).split("MPI: ", 1)[-1].splitlines()[0]:
        sys.exit(f"bench_dist: {args.exe} was built without MPI")
    tmp = tempfile.mkdtemp(prefix="exitrl_bench_dist_")
    common = ["--task", "knapsack", "--model", "tiny", "--progress", "0", "--out_dir", tmp]
    records, B, T = [], 16, 96
    base = facts(args)
    print(f"bench_dist: {base['device']}, {base['mpi']}, load average {base['loadavg_1m']:.2f}")

    # pretrain: step_ms of the steps after the warm-up quarter
    times = {}
    for layout in ("1x2", "2x1"):
        pre, threads, env = layout_cmd(layout, args)
        name = f"pre_{layout}"
        run(pre + ["pretrain", *common, *threads, "--steps", str(args.steps), "--batch_size", str(B), "--seq_len", str(T),
                   "--log_every", "1", "--eval_every", "0", "--name", name], env)
        m = [x for x in metrics(os.path.join(tmp, name, "metrics.jsonl")) if "step_ms" in x][args.steps // 4:]
        step = statistics.median(x["step_ms"] for x in m)
        comm = statistics.median(x["comm_ms"] for x in m) if "comm_ms" in m[0] else 0.0
        times[layout] = step
        records.append({**base, "workload": "pretrain", "config": "tiny", "batch": B, "seq_len": T, "layout": layout,
                        "ranks": 1 if layout == "1x2" else 2, "threads_per_rank": 2 if layout == "1x2" else 1,
                        "steps": len(m), "time_ms": round(step, 3), "comm_ms": round(comm, 3),
                        "value": round(B * T / step * 1e3, 2), "unit": "tokens/s"})
    # one ExIt iteration from a warm start
    pre, threads, env = layout_cmd("1x2", args)
    run(pre + ["pretrain", *common, *threads, "--config", os.path.join(ROOT, "configs", "tiny_cpu.conf"), "--steps", "300",
               "--eval_every", "0", "--name", "warm"], env)
    for layout in ("1x2", "2x1"):
        pre, threads, env = layout_cmd(layout, args)
        name = f"exit_{layout}"
        run(pre + ["train", "--config", os.path.join(ROOT, "configs", "tiny_cpu_exit.conf"), *common, *threads,
                   "--init", os.path.join(tmp, "warm", "checkpoint.bin"), "--iterations", str(args.iterations),
                   "--eval_every", "0", "--ckpt_every", "0", "--name", name], env)
        m = metrics(os.path.join(tmp, name, "metrics.jsonl"))[args.iterations // 4:]
        phases = ("t_plan", "t_rollout", "t_reward", "t_score", "t_update", "t_buffer")
        it_ms = statistics.median(sum(x[p] for p in phases) * 1e3 for x in m)
        comm = statistics.median(x["comm_ms"] for x in m) if "comm_ms" in m[0] else 0.0
        gen = statistics.median(x["gen_tokens"] for x in m) if "gen_tokens" in m[0] else None
        records.append({**base, "workload": "exit_iteration", "config": "tiny", "prompts": 16, "group": 8,
                        "layout": layout, "ranks": 1 if layout == "1x2" else 2,
                        "threads_per_rank": 2 if layout == "1x2" else 1, "iterations": len(m),
                        "time_ms": round(it_ms, 3), "comm_ms": round(comm, 3),
                        "rollout_ms": round(statistics.median(x["t_rollout"] for x in m) * 1e3, 3),
                        "update_ms": round(statistics.median(x["t_update"] for x in m) * 1e3, 3),
                        "value": round(1e3 / it_ms, 4), "unit": "iterations/s"})
    for r in records: # 2 ranks x 1 thread against 1 process x 2 threads, same workload
        ref = next(x for x in records if x["workload"] == r["workload"] and x["layout"] == "1x2")
        r["ratio_vs_1x2"] = round(r["value"] / ref["value"], 4)
    with open(args.out, "a") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    print(f"{'workload':16} {'layout':7} {'value':>12} {'unit':13} {'time ms':>9} {'comm ms':>8} {'ratio':>6}")
    for r in records:
        print(f"{r['workload']:16} {r['layout']:7} {r['value']:12.2f} {r['unit']:13} {r['time_ms']:9.1f} "
              f"{r['comm_ms']:8.2f} {r['ratio_vs_1x2']:6.3f}")
    print(f"appended to {args.out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
