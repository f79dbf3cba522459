#!/usr/bin/env python3
"""Summarises an Nsight Compute raw CSV export (ncu --import R --csv --page raw --print-units base)
into one text table row per kernel: launches, total time, share of the profiled time, achieved
DRAM bandwidth, FLOP/s and what bounds it.

FLOP/s counts CUDA-core fp32/fp64/fp16 work from SASS instruction counts (an FMA is 2 FLOPs) plus,
when the export has them, tensor-core operations (sm__ops_path_tensor_* metrics). "bound" compares
the SpeedOfLight throughputs: memory or compute when that one is the larger and above 60% of peak,
else latency (neither unit is busy: too little parallelism, or waiting).
Usage: ncu_summary.py RAW.csv [--device NAME] [--command TEXT]"""
import argparse
import csv
import re
import sys

TIME = "gpu__time_duration.sum"
DRAM = "dram__bytes.sum.per_second"
SOL_COMPUTE = "sm__throughput.avg.pct_of_peak_sustained_elapsed"
SOL_MEMORY = "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"
# (metric, FLOPs per counted instruction)
SASS_FLOPS = [
    ("sm__sass_thread_inst_executed_op_ffma_pred_on.sum", 2),
    ("sm__sass_thread_inst_executed_op_fadd_pred_on.sum", 1),
    ("sm__sass_thread_inst_executed_op_fmul_pred_on.sum", 1),
    ("sm__sass_thread_inst_executed_op_dfma_pred_on.sum", 2),
    ("sm__sass_thread_inst_executed_op_dadd_pred_on.sum", 1),
    ("sm__sass_thread_inst_executed_op_dmul_pred_on.sum", 1),
    ("sm__sass_thread_inst_executed_op_hfma_pred_on.sum", 4),  # packed half2: 2 lanes x FMA
    ("sm__sass_thread_inst_executed_op_hadd_pred_on.sum", 2),
    ("sm__sass_thread_inst_executed_op_hmul_pred_on.sum", 2),
]
TENSOR_OPS = re.compile(r"^sm__ops_path_tensor_.*\.sum$")
BOUND_THRESHOLD = 60.0

PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
TIME_UNITS = {"nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0,
              "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def unit_scale(unit):
    """Factor turning a value in `unit` into base SI units (seconds, bytes, bytes/second...)."""
    unit = unit.strip()
    if not unit or unit in ("%", "inst", "ops", "op"):
        return 1.0
    if "/" in unit:
        num, den = unit.split("/", 1)
        return unit_scale(num) / unit_scale(den)
    if unit in TIME_UNITS:
        return TIME_UNITS[unit]
    m = re.match(r"^([KMGTP]?)(byte|bytes|inst|cycle|cycles|op|ops|flop)$", unit)
    if m:
        return PREFIX[m.group(1)]
    return 1.0


def number(text):
    text = (text or "").replace(",", "").strip()
    if text in ("", "n/a", "N/A", "nan"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def short_name(name, width=64):
    name = re.sub(r"\(.*\)$", "", name.strip())  # drop the argument list
    name = re.sub(r"^void ", "", name)
    return name if len(name) <= width else name[: width - 3] + "..."


def human(value, unit):
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {prefix}{unit}"
    return f"{value:.1f} {unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--device", default="")
    ap.add_argument("--command", default="")
    args = ap.parse_args()

    with open(args.csv, newline="") as f:
        rows = list(csv.reader(f))
    # ncu may print informational lines before the table: the header is the row naming the kernel.
    start = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if start is None or start + 1 >= len(rows):
        sys.exit(f"ncu_summary: {args.csv} has no kernel table (was anything profiled?)")
    header, units, data = rows[start], rows[start + 1], rows[start + 2:]
    col = {name: i for i, name in enumerate(header)}
    if TIME not in col:
        sys.exit(f"ncu_summary: {args.csv} lacks {TIME}")
    scale = {name: unit_scale(units[i]) if i < len(units) else 1.0 for name, i in col.items()}
    tensor_cols = [name for name in header if TENSOR_OPS.match(name)]

    def metric(row, name):
        i = col.get(name)
        if i is None or i >= len(row):
            return None
        v = number(row[i])
        return None if v is None else v * scale[name]

    kernels = {}
    device = args.device
    for row in data:
        if len(row) < len(header) // 2:
            continue
        name = short_name(row[col["Kernel Name"]])
        if not device and "Device Name" in col:
            device = row[col["Device Name"]]
        t = metric(row, TIME)
        if t is None:
            continue
        k = kernels.setdefault(name, {"launches": 0, "time": 0.0, "bytes": 0.0, "has_bytes": False,
                                      "flops": 0.0, "has_flops": False, "tensor": 0.0, "has_tensor": False,
                                      "sol_c": 0.0, "sol_m": 0.0, "has_sol": False})
        k["launches"] += 1
        k["time"] += t
        bw = metric(row, DRAM)
        if bw is not None:
            k["bytes"] += bw * t
            k["has_bytes"] = True
        flops = [metric(row, m) for m, _ in SASS_FLOPS]
        if any(v is not None for v in flops):
            k["flops"] += sum((v or 0.0) * w for v, (_, w) in zip(flops, SASS_FLOPS))
            k["has_flops"] = True
        tensor = [metric(row, m) for m in tensor_cols]
        if any(v is not None for v in tensor):
            k["tensor"] += sum(v or 0.0 for v in tensor)
            k["has_tensor"] = True
        sc, sm = metric(row, SOL_COMPUTE), metric(row, SOL_MEMORY)
        if sc is not None and sm is not None:
            k["sol_c"] += sc * t  # time-weighted, averaged below
            k["sol_m"] += sm * t
            k["has_sol"] = True

    total = sum(k["time"] for k in kernels.values())
    if total <= 0:
        sys.exit("ncu_summary: no kernel durations in the export")
    print(f"Nsight Compute summary of one training step: {device or 'unknown device'}")
    if args.command:
        print(f"command: {args.command}")
    print(f"profiled kernel time {total * 1e3:.3f} ms in {sum(k['launches'] for k in kernels.values())} launches; "
          f"bound = memory/compute when that SpeedOfLight throughput is the larger and >= {BOUND_THRESHOLD:.0f}% "
          f"of peak, else latency")
    print()
    cols = f"{'kernel':<64} {'launches':>8} {'time ms':>9} {'share':>6} {'DRAM BW':>11} {'FLOP/s':>11} " \
           f"{'tensor op/s':>12} {'SOL c/m %':>10} {'bound':>8}"
    print(cols)
    print("-" * len(cols))
    for name, k in sorted(kernels.items(), key=lambda kv: -kv[1]["time"]):
        t = k["time"]
        bw = k["bytes"] / t if k["has_bytes"] else None
        fl = k["flops"] / t if k["has_flops"] else None
        tn = k["tensor"] / t if k["has_tensor"] else None
        if k["has_sol"]:
            c, m = k["sol_c"] / t, k["sol_m"] / t
            sol = f"{c:.0f}/{m:.0f}"
            if max(c, m) < BOUND_THRESHOLD:
                bound = "latency"
            else:
                bound = "memory" if m >= c else "compute"
        else:
            sol, bound = "-", "-"
        print(f"{name:<64} {k['launches']:>8} {t * 1e3:>9.3f} {100 * t / total:>5.1f}% {human(bw, 'B/s'):>11} "
              f"{human(fl, 'FLOP/s'):>11} {human(tn, 'op/s'):>12} {sol:>10} {bound:>8}")


if __name__ == "__main__":
    main()
