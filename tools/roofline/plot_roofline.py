#!/usr/bin/python3
"""Draws a roofline of npuq_bench results (Google Benchmark JSON): GOPS against arithmetic
intensity for every GEMM / conv / depthwise shape, under this CPU's measured int8 peaks
(peak/* horizontal ceilings) and read bandwidth (peak/read_bandwidth_* slanted ceilings).

Why this exists: the tables in docs/benchmarks.md give GOPS per shape; the roofline shows at a
glance which shapes could go faster (far below their ceiling) and which are at the machine's
limit, for npuq and for the peers (oneDNN, XNNPACK). Generator-only dependency: Debian
python3-matplotlib (scripts/lib/deps.sh, NPUQ_DOCS_PACKAGES). How to regenerate: docs/benchmarks.md,
"Roofline", or tools/roofline/make_roofline.sh.

    /usr/bin/python3 tools/roofline/plot_roofline.py tools/roofline/data/roofline_bench.json docs/images/npuq_bench_roofline.png

Arithmetic intensity = ops / minimum bytes moved: every input, weight and output byte once
(int8: 1 byte, int32 bias: 4 bytes), ops = 2 x MAC as in the GOPS counter. The shapes are the
table SHAPES below, copied from bench/bench_common.hpp (gemm_shapes, conv_shapes): change both
together. A shape in the JSON that the table lacks is an error, not a missing point.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# name: ("gemm", M, N, K) or ("conv" | "dwconv", H, W, C, OC, stride); 3x3, padding 1, batch 1.
SHAPES = {
    "gemv-4096": ("gemm", 1, 4096, 4096),
    "bert-ffn-64tok": ("gemm", 64, 768, 3072),
    "sq256": ("gemm", 256, 256, 256),
    "sq1024": ("gemm", 1024, 1024, 1024),
    "mbv2-1x1-expand": ("gemm", 3136, 144, 24),
    "mbv2-1x1-project": ("gemm", 3136, 24, 144),
    "mbv2-conv0": ("conv", 224, 224, 3, 32, 2),
    "mbv2-dw-112x112x32-s1": ("dwconv", 112, 112, 32, 32, 1),
    "mbv2-dw-112x112x96-s2": ("dwconv", 112, 112, 96, 96, 2),
    "mbv2-dw-56x56x144-s1": ("dwconv", 56, 56, 144, 144, 1),
    "mbv2-dw-14x14x576-s1": ("dwconv", 14, 14, 576, 576, 1),
    "resnet-56x56x64": ("conv", 56, 56, 64, 64, 1),
}

# Where a shape's label goes, in points from its npuq point (an arrow joins them). Shapes of
# about one intensity (the depthwise layers near 9 ops/byte; the 1x1 layers and conv0 near 40)
# sit on one vertical: their labels are stacked in a column to the right instead, in the order
# of their npuq points.
LABEL_OFFSET = {
    "gemv-4096": (14, -22),
    "bert-ffn-64tok": (-10, 22),
    "sq256": (14, -14),
    "sq1024": (6, 22),
    "mbv2-dw-112x112x96-s2": (14, -14),
    "resnet-56x56x64": (-10, -34),
}

# Ceilings: peak benchmark -> legend text. Missing or failed ones (not on this CPU) are skipped.
PEAKS = [
    ("avx512_vnni_vpdpbusd_zmm", "AVX-512 VNNI vpdpbusd zmm"),
    ("avx_vnni_vpdpbusd_ymm", "AVX-VNNI vpdpbusd ymm"),
    ("avx2_vpmaddubsw", "AVX2 vpmaddubsw (inexact)"),
    ("avx2_vpmaddwd", "AVX2 vpmaddwd"),
    ("amx_tdpbssd", "AMX tdpbssd"),
]
BANDWIDTHS = [("read_bandwidth_256MiB", "DRAM read (256 MiB)"), ("read_bandwidth_8MiB", "L3 read (8 MiB)")]


def ops_and_bytes(shape):
    """2 x MAC and the minimum bytes moved (inputs + weights + outputs once, bias int32)."""
    s = SHAPES[shape]
    if s[0] == "gemm":
        _, m, n, k = s
        return 2.0 * m * n * k, m * k + k * n + m * n + 4 * n
    op, h, w, c, oc, stride = s
    oh, ow = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    depth = 1 if op == "dwconv" else c
    return 2.0 * oh * ow * oc * 9 * depth, h * w * c + 9 * depth * oc + oh * ow * oc + 4 * oc


def load(path):
    """{run_name: benchmark entry}; the median when the JSON holds repetition aggregates."""
    doc = json.load(open(path))
    runs = {}
    for b in doc["benchmarks"]:
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"]).split("/iterations:")[0]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                runs[name] = b
        elif name not in runs:
            runs[name] = b
    return doc["context"], runs


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(src, dst):
    ctx, runs = load(src)
    levels = ctx.get("npuq_isa_levels", "").split()
    best = "npuq_simd_" + levels[-1] if levels else None
    # Series: (legend, variant predicate, marker, color, filled)
    series = [
        ("npuq simd, best level (%s)" % (levels[-1] if levels else "?"), lambda v: v == best, "o", "#1f77b4", True),
        ("npuq plan (onnx profile)", lambda v: v.startswith("npuq_plan_"), "o", "#1f77b4", False),
        ("oneDNN s8", lambda v: v == "onednn_s8", "s", "#ff7f0e", True),
        ("oneDNN u8", lambda v: v == "onednn_u8", "s", "#ff7f0e", False),
        ("XNNPACK", lambda v: v.startswith("xnnpack_"), "^", "#2ca02c", True),
    ]
    points = {i: [] for i in range(len(series))}  # series -> [(ai, gops, shape)]
    npuq_at = {}
    for name, b in runs.items():
        parts = name.split("/")
        if len(parts) != 3 or parts[0] not in ("gemm", "conv", "dwconv") or "GOPS" not in b:
            continue
        _, shape, variant = parts
        if shape not in SHAPES:
            sys.exit("%s: shape %s is not in SHAPES (copy it from bench/bench_common.hpp)" % (src, shape))
        ops, nbytes = ops_and_bytes(shape)
        for i, (_, pred, _, _, _) in enumerate(series):
            if pred(variant):
                points[i].append((ops / nbytes, b["GOPS"], shape))
                if i == 0:
                    npuq_at[shape] = (ops / nbytes, b["GOPS"])
    if not any(points.values()):
        sys.exit("%s: no gemm/conv/dwconv results with a GOPS counter" % src)

    all_ai = [p[0] for pts in points.values() for p in pts]
    x_lo, x_hi = min(all_ai) / 2, max(all_ai) * 3
    fig, ax = plt.subplots(figsize=(11, 7))
    ax.set_xscale("log")
    ax.set_yscale("log")

    peaks = [(runs["peak/" + k]["GOPS"], text) for k, text in PEAKS if "GOPS" in runs.get("peak/" + k, {})]
    top = max([p for p, _ in peaks] + [1.0])
    ax.set_xlim(x_lo, x_hi)
    all_gops = [p[1] for pts in points.values() for p in pts]
    ax.set_ylim(min(all_gops) / 2, top * 2.5)
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]
    for (gops, text), style in zip(sorted(peaks, reverse=True), styles):
        ax.axhline(gops, color="0.3", linestyle=style, linewidth=1.1)
        ax.text(x_lo * 1.08, gops * 1.03, "%s  %.0f GOPS" % (text, gops), ha="left", va="bottom", fontsize=8, color="0.25")
    for (key, text), color in zip(BANDWIDTHS, ("#d62728", "#9467bd")):
        b = runs.get("peak/" + key)
        if not b or "bytes_per_second" not in b:
            continue
        gbs = b["bytes_per_second"] / 1e9
        xs = [x_lo, min(top / gbs, x_hi)]
        ax.plot(xs, [x * gbs for x in xs], color=color, linewidth=1.5)
        # Text along the line, under it, where the line is at a third of the top ceiling.
        y_text = top / 3
        x_text = y_text / gbs
        p0 = ax.transData.transform((x_text, y_text))
        p1 = ax.transData.transform((x_text * 2, y_text * 2))
        angle = math.degrees(math.atan2(p1[1] - p0[1], p1[0] - p0[0]))
        ax.text(x_text * 1.1, y_text, "%s  %.1f GB/s" % (text, gbs), rotation=angle, rotation_mode="anchor",
                fontsize=8, color=color, ha="left", va="top")

    for i, (label, _, marker, color, filled) in enumerate(series):
        pts = points[i]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, s=46 if filled else 70,
                   facecolors=color if filled else "none", edgecolors=color, linewidths=1.3, zorder=3)
    labels = dict((shape, LABEL_OFFSET.get(shape, (10, -10))) for shape in npuq_at)
    fig.canvas.draw()  # the transforms below need the final axes size
    to_px = ax.transData.transform
    for shape in npuq_at:
        ai = npuq_at[shape][0]
        group = sorted((s for s in npuq_at if abs(npuq_at[s][0] / ai - 1) < 0.15), key=lambda s: -npuq_at[s][1])
        if len(group) < 2 or group[0] != shape:
            continue
        center = sum(to_px(npuq_at[s])[1] for s in group) / len(group)
        for k, s in enumerate(group):  # 14 px apart, highest point on top; 100 dpi: 1 px ~ 0.72 pt
            labels[s] = (40, (center + ((len(group) - 1) / 2 - k) * 14 - to_px(npuq_at[s])[1]) * 0.72)
    for shape, (ai, gops) in npuq_at.items():
        dx, dy = labels[shape]
        ax.annotate(shape, (ai, gops), xytext=(dx, dy), textcoords="offset points", fontsize=7.5,
                    ha="left" if dx >= 0 else "right", va="center", color="0.1",
                    arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.6, shrinkA=0, shrinkB=3))

    ax.set_xlabel("arithmetic intensity: ops / minimum bytes moved (int8 in + weights + out, int32 bias)")
    ax.set_ylabel("GOPS (2 x int8 MAC / s, per CPU second)")
    threads = ctx.get("threads", "?")
    ax.set_title("npuq_bench roofline: %s, %s thread%s, ISA levels %s" %
                 (cpu_model(), threads, "" if threads == "1" else "s", ctx.get("npuq_isa_levels", "?")))
    ax.grid(True, which="major", color="0.9")
    handles = [Line2D([], [], linestyle="none", marker=m, markersize=7, markerfacecolor=c if f else "none",
                      markeredgecolor=c, label=lab) for lab, _, m, c, f in series]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)
    print("%s: %d points, %d peaks -> %s" % (src, len(all_gops), len(peaks), dst))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_roofline.py <npuq_bench.json> <out.png>")
    main(sys.argv[1], sys.argv[2])
