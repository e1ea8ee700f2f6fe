#!/usr/bin/env python3
"""Reference vectors for npuq's scalesim_compat NPU profile, produced by SCALE-Sim v2 itself.

Runs SCALE-Sim v2 (https://github.com/scalesim-project/scale-sim-v2) on the layers in
layers.csv for every array / dataflow / SRAM configuration below and writes what SCALE-Sim
reports (COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv) to vectors.csv. The C++ test
tests/test_npu_scalesim.cpp reads vectors.csv; it needs neither Python nor SCALE-Sim.

Usage (Debian: apt-get install python3-numpy python3-pandas python3-tqdm):
  git clone https://github.com/scalesim-project/scale-sim-v2 /tmp/ss2
  python3 tests/data/scalesim/make_vectors.py --scalesim /tmp/ss2 --commit <hash of /tmp/ss2>
  # runs past --budget are skipped (and listed); run them later and add their rows:
  python3 tests/data/scalesim/make_vectors.py ... --arrays a16x64,a128 --append

Floats are copied verbatim from SCALE-Sim's reports (Python's shortest round-trip repr), so a
C++ double parsed from them is the double SCALE-Sim computed.
"""
import argparse
import csv
import glob
import os
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (rows, cols, tag): a layer runs on the arrays whose tag its `arrays` column lists. Small arrays get small layers: SCALE-Sim walks
# every demand line in Python, so a big layer on an 8x8 array takes minutes.
ARRAYS = [(8, 8, "a8"), (32, 32, "a32"), (16, 64, "a16x64"), (128, 128, "a128")]
DATAFLOWS = ["os", "ws", "is"]
# SRAM sizes in KiB (ifmap, filter, ofmap): small ones make the ofmap buffer drain mid-layer.
SRAMS = [(2, 2, 1), (64, 64, 64), (6144, 6144, 2048)]
# InterfaceBandwidth USER runs (--user, written to vectors_user.csv): DRAM words per cycle, on the
# layers tagged u (small ones: SCALE-Sim's USER-mode read buffers are slow), where reads and the
# ofmap drain stall.
USER_BANDWIDTHS = [4, 32]
USER_ARRAYS = [(8, 8, "u"), (32, 32, "u"), (16, 64, "u")]
USER_SRAMS = [(1, 1, 1), (8, 8, 4), (64, 64, 64)]


def load_layers():
    layers = []
    with open(os.path.join(HERE, "layers.csv")) as f:
        for row in csv.DictReader(f):
            layers.append({k: v.strip() for k, v in row.items()})
    return layers


def write_topology(path, layers, gemm):
    with open(path, "w") as f:
        if gemm:
            f.write("Layer Name, M, N, K,\n")
            for l in layers:
                f.write("%s, %s, %s, %s,\n" % (l["name"], l["M"], l["N"], l["K"]))
        else:
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
            for l in layers:
                f.write("%s,%s,%s,%s,%s,%s,%s,%s,\n" % (l["name"], l["H"], l["W"], l["R"], l["S"], l["C"], l["N"], l["stride"]))


def write_config(path, rows, cols, df, srams, bw=0):
    with open(path, "w") as f:
        f.write("[general]\nrun_name = npuq\n\n[architecture_presets]\n")
        f.write("ArrayHeight: %d\nArrayWidth: %d\n" % (rows, cols))
        f.write("IfmapSramSzkB: %d\nFilterSramSzkB: %d\nOfmapSramSzkB: %d\n" % srams)
        f.write("IfmapOffset: 0\nFilterOffset: 10000000\nOfmapOffset: 20000000\n")
        f.write("Bandwidth : %d\nDataflow : %s\nMemoryBanks: 1\n\n[run_presets]\nInterfaceBandwidth: %s\n"
                % (bw if bw else 10, df, "USER" if bw else "CALC"))


def read_report(path):
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip()]
    return [[c.strip() for c in l.split(",") if c.strip() != ""] for l in lines[1:]]


def run(scalesim_cls, rows, cols, df, srams, layers, gemm, work, bw=0):
    topo = os.path.join(work, "topo.csv")
    cfg = os.path.join(work, "cfg.cfg")
    out = os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    for p in glob.glob(os.path.join(out, "**", "*.csv"), recursive=True):
        os.remove(p)
    write_topology(topo, layers, gemm)
    write_config(cfg, rows, cols, df, srams, bw)
    s = scalesim_cls(save_disk_space=True, verbose=False, config=cfg, topology=topo, input_type_gemm=gemm)
    s.run_scale(top_path=out)
    comp = read_report(glob.glob(os.path.join(out, "**", "COMPUTE_REPORT.csv"), recursive=True)[0])
    det = read_report(glob.glob(os.path.join(out, "**", "DETAILED_ACCESS_REPORT.csv"), recursive=True)[0])
    return comp, det


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalesim", required=True, help="a checkout of scale-sim-v2")
    ap.add_argument("--commit", required=True, help="the commit of that checkout")
    ap.add_argument("--budget", type=float, default=900.0, help="stop starting new runs after this many seconds")
    ap.add_argument("--arrays", default="", help="comma-separated array tags to run (default: all)")
    ap.add_argument("--append", action="store_true", help="add the rows to an existing vectors.csv of the same commit")
    ap.add_argument("--user", action="store_true", help="InterfaceBandwidth USER runs instead, to vectors_user.csv")
    args = ap.parse_args()
    sys.path.insert(0, args.scalesim)
    from scalesim.scale_sim import scalesim

    def timeout(signum, frame):
        raise TimeoutError("no result after 180 s")
    signal.signal(signal.SIGALRM, timeout)
    layers = load_layers()
    t0 = time.time()
    rows_out = []
    only = [a for a in args.arrays.split(",") if a]
    if args.user:
        plan = [(r, c, g, df, sr, bw) for bw in USER_BANDWIDTHS for (r, c, g) in USER_ARRAYS for df in DATAFLOWS for sr in USER_SRAMS]
    else:
        plan = [(r, c, g, df, sr, 0) for (r, c, g) in ARRAYS for df in DATAFLOWS for sr in SRAMS]
    plan = [p for p in plan if not only or p[2] in only]
    with tempfile.TemporaryDirectory() as work:
        for (r, c, group, df, srams, bw) in plan:
            for gemm in (False, True):
                chosen = [l for l in layers if (l["kind"] == "gemm") == gemm and group in l["arrays"].split("|")]
                if not chosen:
                    continue
                if time.time() - t0 > args.budget:
                    print("budget reached, skipping", r, c, df, srams, bw, file=sys.stderr)
                    continue
                t1 = time.time()
                try:
                    signal.alarm(180)  # SCALE-Sim's USER-mode read buffer can loop forever on a miss
                    comp, det = run(scalesim, r, c, df, srams, chosen, gemm, work, bw)
                    signal.alarm(0)
                except Exception as e:  # SCALE-Sim's USER mode fails on some shapes; such runs are left out
                    print("SCALE-Sim failed on %dx%d %s %s bw %d: %r" % (r, c, df, srams, bw, e), file=sys.stderr)
                    continue
                # SCALE-Sim splits a depthwise ("DP") layer into one layer per channel; its
                # reports then have more rows than `chosen`. Expand the names alike.
                names = []
                for l in chosen:
                    if not gemm and "DP" in l["name"]:
                        names += [(l, i) for i in range(int(l["C"]))]
                    else:
                        names.append((l, -1))
                assert len(names) == len(comp) == len(det), (len(names), len(comp), len(det))
                for (l, ch), cr, dr in zip(names, comp, det):
                    rows_out.append([l["name"] + ("" if ch < 0 else "/ch%d" % ch), r, c, df, srams[0], srams[1], srams[2]]
                                    + cr[1:6] + [dr[3], dr[6], dr[9], dr[12], dr[15], dr[18]] + ([bw] if bw else []))
                print("%dx%d %s %s bw %d %s: %d layers, %.1f s" % (r, c, df, srams, bw, "gemm" if gemm else "conv",
                                                                len(names), time.time() - t1), file=sys.stderr)
    path = os.path.join(HERE, "vectors_user.csv" if args.user else "vectors.csv")
    comment = "# SCALE-Sim v2 commit %s, InterfaceBandwidth %s, word size 1 byte\n" % (args.commit, "USER" if args.user else "CALC")
    if args.append:
        with open(path) as f:
            assert f.readline() == comment, "vectors.csv comes from another SCALE-Sim commit"
    with open(path, "a" if args.append else "w") as f:
        if not args.append:
            f.write(comment)
            f.write("layer,rows,cols,dataflow,ifmap_kb,filter_kb,ofmap_kb,total_cycles,stall_cycles,overall_util,"
                    "mapping_eff,compute_util,sram_ifmap_reads,sram_filter_reads,sram_ofmap_writes,dram_ifmap_reads,"
                    "dram_filter_reads,dram_ofmap_writes%s\n" % (",bandwidth" if args.user else ""))
        for row in rows_out:
            f.write(",".join(str(x) for x in row) + "\n")
    print("%d rows in %.0f s" % (len(rows_out), time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
