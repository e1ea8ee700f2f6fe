#!/usr/bin/python3
"""Draws the per-tile NPU timeline of a model run on one emulator preset (compute / fill-drain /
DMA stall per tile, one lane per layer) from the trace CSV npuq_onnx_run writes.

Why this exists: the per-layer table says where the cycles go; a picture of the tiles shows it
at a glance (docs/onnx-models.md). Generator-only dependency: Debian python3-matplotlib.

    build/examples/npuq_onnx_run tests/data/digits/digits_cnn.onnx tests/data/digits/test_images.pb \\
        --backends npu --presets generic --limit 8 --quiet-layers --trace-dir /tmp/trace
    /usr/bin/python3 tools/digits/plot_npu_timeline.py /tmp/trace/digits_cnn_generic.csv docs/images/digits_cnn_generic_timeline.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402


def main(src, dst):
    rows = list(csv.DictReader(open(src)))
    if not rows:
        sys.exit("%s: no tiles (was the profile's record_tiles off?)" % src)
    ops = {}
    for r in rows:
        ops.setdefault(int(r["op_index"]), []).append(r)
    fig, ax = plt.subplots(figsize=(11, 0.6 * len(ops) + 1.5))
    base = 0  # ops run one after another; a tile's start_cycle is within its op
    colors = {"dma_stall": "#d62728", "fill_drain": "#ff7f0e", "compute": "#1f77b4"}
    labels = []
    for lane, (idx, tiles) in enumerate(sorted(ops.items())):
        end = base
        for t in tiles:
            x = base + int(t["start_cycle"])
            for part in ("dma_stall", "fill_drain", "compute"):
                w = int(t[part])
                if w > 0:
                    ax.barh(lane, w, left=x, height=0.6, color=colors[part], edgecolor="white", linewidth=0.3)
                x += w
            end = max(end, x)
        labels.append("%d %s (%d tiles)" % (idx, tiles[0]["op"], len(tiles)))
        base = end
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("cycle")
    name = src.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    ax.set_title("NPU emulator timeline: %s (%d cycles)" % (name, base))
    ax.legend(handles=[Patch(color=c, label=part.replace("_", " ")) for part, c in colors.items()], loc="upper right")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print("%s: %d tiles, %d cycles -> %s" % (src, len(rows), base, dst))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_npu_timeline.py <trace.csv> <out.png>")
    main(sys.argv[1], sys.argv[2])
