#!/usr/bin/env python3
"""Turns npuq_bench's JSON output into the markdown tables of docs/benchmarks.md.

    python3 bench/report.py build-bench/bench.json > build-bench/bench.md

Reads the median of each benchmark when the run had repetitions, else the single run. GOPS is
the benchmark's own counter (2 * MACs / 1e9 per CPU second). npuq-simd is npuq's best ISA
level in the run; ratios compare it with each peer and with the AVX2 vpmaddwd peak measured in
the same run. Numbers are printed as measured, nothing is filled in.
"""
import json
import re
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    runs, errors = {}, {}
    have_aggregates = any(b.get("run_type") == "aggregate" for b in data["benchmarks"])
    for b in data["benchmarks"]:
        # A fixed iteration count shows in the name ("/iterations:1"); the table does not need it.
        name = re.sub(r"/iterations:\d+$", "", b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        if have_aggregates and b.get("aggregate_name") != "median":
            continue
        runs[name] = b
    return data["context"], runs, errors


def gops(runs, name):
    b = runs.get(name)
    return None if b is None else b.get("GOPS")


def fmt(x, digits=1):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.{digits}f}"
    return f"{x:.2f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main():
    context, runs, errors = load(sys.argv[1])
    levels = context.get("npuq_isa_levels", "portable").split()
    best = levels[-1]
    peak = gops(runs, "peak/avx2_vpmaddwd")
    out = []
    w = out.append

    for op, title in (("gemm", "GEMM (M x N x K)"), ("conv", "conv2d"), ("dwconv", "depthwise conv2d")):
        shapes = []
        for name in runs:
            parts = name.split("/")
            if parts[0] == op and parts[1] not in shapes:
                shapes.append(parts[1])
        if not shapes:
            continue
        variants = ["npuq_scalar"] + [f"npuq_simd_{l}" for l in levels]
        peers = [p for p in ("onednn_s8", "onednn_u8", "xnnpack_qs8", "xnnpack_qc8") if any(f"{op}/{s}/{p}" in runs for s in shapes)]
        head = ["shape"] + [v.replace("npuq_", "npuq ").replace("simd_", "simd ") for v in variants] + \
               [p.replace("onednn_", "oneDNN ").replace("xnnpack_", "XNNPACK ") for p in peers]
        xnn = [p for p in peers if p.startswith("xnnpack")]
        head += [f"simd/oneDNN s8", f"simd/oneDNN u8", "simd/XNNPACK", "simd/peak"]
        w(f"### {title}: GOPS\n")
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        for s in shapes:
            g = {v: gops(runs, f"{op}/{s}/{v}") for v in variants + peers}
            mine = g[f"npuq_simd_{best}"]
            row = [s] + [fmt(g[v]) for v in variants + peers]
            row += [ratio(mine, g.get("onednn_s8")), ratio(mine, g.get("onednn_u8")),
                    ratio(mine, g[xnn[0]]) if xnn else "-", ratio(mine, peak)]
            w("| " + " | ".join(row) + " |")
        w("")
        w(f"Kernels that ran ({title}):\n")
        w("| shape | npuq simd " + best + " | oneDNN s8 | oneDNN u8 |")
        w("|---|---|---|---|")
        for s in shapes:
            lab = lambda v: (runs.get(f"{op}/{s}/{v}") or {}).get("label", "-")
            w(f"| {s} | `{lab('npuq_simd_' + best)}` | `{lab('onednn_s8')}` | `{lab('onednn_u8')}` |")
        w("")
        if op == "gemm":
            gemv = [n for n in runs if n.startswith("gemm/gemv-4096/")]
            if gemv:
                w("GEMV weight streaming rate (int8 weights read per CPU second, GB/s): " + ", ".join(
                    f"{n.split('/')[-1]} {runs[n].get('bytes_per_second', 0) / 1e9:.1f}" for n in gemv) + ".\n")

    w("### Peak int8 MAC rate of this CPU (tight instruction loops)\n")
    ghz = (runs.get("peak/clock_dependent_adds") or {}).get("GHz")
    w("| loop | GOPS | MAC/cycle |")
    w("|---|---|---|")
    for name in [n for n in list(runs) + list(errors) if n.startswith("peak/")]:
        if name == "peak/clock_dependent_adds" or name.startswith("peak/read_bandwidth"):
            continue
        if name in errors:
            w(f"| {name[5:]} | {errors[name]} | - |")
        else:
            g = gops(runs, name)
            w(f"| {name[5:]} | {fmt(g)} | {g / 2 / ghz:.1f} |" if ghz else f"| {name[5:]} | {fmt(g)} | - |")
    if ghz:
        w(f"\nClock while running (chain of dependent adds): {ghz:.2f} GHz.")
    bw = [n for n in runs if n.startswith("peak/read_bandwidth") and "bytes_per_second" in runs[n]]
    if bw:
        w("\nRead bandwidth, one thread (GB/s): " + ", ".join(
            f"{n[5:]} {runs[n]['bytes_per_second'] / 1e9:.1f}" for n in bw) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    main()
