"""Turn a bench/run work directory into the table, latest.json and plot data.

usage: report.py WORK_DIR OUT_JSON
"""
import json
import sys

RATIOS = [
    # name, numerator, denominator, scale, op, target, stretch, what
    ("acks_64K_vs_db_bench_sync_batch32", "qsd.64K.full.acks_per_s",
     "db_bench.64K.sync1.batch32.ops_per_s", 1, ">=", 1.0, 1.5,
     "durable acks/s vs RocksDB group commit (sync, batch 32)"),
    ("acks_64K_vs_db_bench_sync_batch1", "qsd.64K.full.acks_per_s",
     "db_bench.64K.sync1.batch1.ops_per_s", 1, ">=", 2.0, None,
     "durable acks/s vs one write, one sync"),
    ("acks_4K_vs_db_bench_4K_sync_batch32", "qsd.4K.full.acks_per_s",
     "db_bench.4K.sync1.batch32.ops_per_s", 1, ">=", 0.5, None,
     "4 KiB durable acks/s vs RocksDB sync batch 32 at 4 KiB"),
    ("half_load_p99_vs_fio_64K_sync_p99", "qsd.64K.load50.p99_us",
     "fio.64K.sync_p99_us", 1, "<=", 12.0, None,
     "p99 at half load vs the disk's 64 KiB fdatasync p99"),
    ("cluster_proofs_x4_vs_single_acks", "cluster.proofs_per_s",
     "qsd.64K.full.acks_per_s", 4, ">=", 0.6, None,
     "4-node proofs/s x 4 vs one node's durable acks/s (64 KiB)"),
    ("getpayload_p99_vs_250us", "getpayload.p99_us", None, 1 / 250, "<=", 1.0, None,
     "GetPayload p99 / 250 us (10,000 proofs of 100-txn batches, 20 authors; pulls of 2,000 txns)"),
    ("getpayload_rps_vs_20000", "getpayload.requests_per_s", None, 1 / 20000, ">=", 1.0, None,
     "GetPayload requests/s / 20,000 (one client, 1 in flight, spin_us 200)"),
    ("restart_vs_5s", "restart.first_rpc_ms", None, 1 / 5000, "<=", 1.0, None,
     "restart with 100,000 batches: exec to first RPC answer / 5 s"),
    ("overload_rss_vs_bound", "qsd.overload.rss_peak_bytes",
     "qsd.overload.rss_bound_bytes", 1, "<=", 1.0, None,
     "peak RSS at 5x overload / (quotas + payload cache + RocksDB memory + 64 MiB)"),
]

INFO_RATIOS = [
    ("acks_64K_vs_fio_64K_iops", "qsd.64K.full.acks_per_s", "fio.64K.iops"),
    ("acks_64K_vs_db_bench_nosync_batch32", "qsd.64K.full.acks_per_s",
     "db_bench.64K.sync0.batch32.ops_per_s"),
    ("db_bench_64K_sync_batch32_vs_batch1", "db_bench.64K.sync1.batch32.ops_per_s",
     "db_bench.64K.sync1.batch1.ops_per_s"),
    # 4 KiB with 32 in flight per validator (the target's closed loop holds
    # 2 MiB, 512 batches, as the 64 KiB one does)
    ("acks_4K_32_inflight_vs_db_bench_4K_sync_batch32", "qsd.4K.inflight32.acks_per_s",
     "db_bench.4K.sync1.batch32.ops_per_s"),
    # one client, 4 requests pipelined on its connection (the target is
    # measured with 1 in flight)
    ("getpayload_rps_4_inflight_vs_20000", "getpayload.inflight4.requests_per_s", 20000),
    # the same request and answer sizes with no qsd: the floor of one
    # request at a time between two processes on this machine
    ("getpayload_rps_vs_unix_pingpong", "getpayload.requests_per_s",
     "unix_pingpong.requests_per_s"),
    # the same client sleeping in poll() as soon as an answer is not there
    # (spin_us 0), against 20,000 and against the bare exchange that does
    # the same
    ("getpayload_wait_rps_vs_20000", "getpayload.wait.requests_per_s", 20000),
    ("getpayload_wait_rps_vs_unix_pingpong_wait", "getpayload.wait.requests_per_s",
     "unix_pingpong.wait.requests_per_s"),
]


def read_tsv(path, cols):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= cols:
                    rows.append(parts)
    except FileNotFoundError:
        pass
    return rows


def num(s):
    try:
        v = float(s)
    except ValueError:
        return s
    return int(v) if v.is_integer() and "." not in s else v


def nest(flat):
    out = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def main():
    wdir, out_json = sys.argv[1], sys.argv[2]
    figs = {k: num(v) for k, v in read_tsv(f"{wdir}/figures.tsv", 2)}
    skipped = {k: v for k, v in read_tsv(f"{wdir}/skipped.tsv", 2)}
    machine = {k: v for k, v in read_tsv(f"{wdir}/machine.tsv", 2)}
    loads = read_tsv(f"{wdir}/loads.tsv", 7)

    ratios = {}
    for name, a, b, scale, op, target, stretch, what in RATIOS:
        r = {"what": what, "op": op, "target": target, "numerator": a}
        if b:
            r["denominator"] = b
        if stretch:
            r["stretch"] = stretch
        va = figs.get(a)
        vb = figs.get(b) if b else 1
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb:
            v = va * scale / vb
            r["value"] = round(v, 4)
            r["pass"] = v >= target if op == ">=" else v <= target
            if stretch:
                r["stretch_pass"] = v >= stretch
        else:
            r["value"] = None
            r["pass"] = None
            r["missing"] = [x for x in (a, b) if x and not isinstance(figs.get(x), (int, float))]
        ratios[name] = r
    info = {}
    for name, a, b in INFO_RATIOS:
        va = figs.get(a)
        vb = b if isinstance(b, (int, float)) else figs.get(b)
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb:
            info[name] = round(va / vb, 4)

    doc = {
        "machine": {k: num(v) if k in ("cores", "memory_bytes", "git_dirty") else v
                    for k, v in machine.items() if not k.startswith("package.")},
        "packages": {k[8:]: v for k, v in machine.items() if k.startswith("package.")},
        "figures": nest(figs),
        "load_curve": [
            {"label": l[0], "offered_per_s": num(l[1]) if l[1] else None,
             "acks_per_s": num(l[2]) if l[2] else None,
             "mb_per_s": num(l[3]) if l[3] else None,
             "p50_us": num(l[4]) if l[4] else None, "p99_us": num(l[5]) if l[5] else None,
             "p999_us": num(l[6]) if l[6] else None}
            for l in loads],
        "ratios": ratios,
        "informative_ratios": info,
        "skipped": skipped,
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")

    # Plot data: load points by offered load, and the reference lines.
    pts = sorted((l for l in loads if l[1] and l[2] and not l[0].startswith("4K")),
                 key=lambda l: float(l[1]))
    with open(f"{wdir}/plot.loads.dat", "w", encoding="utf-8") as f:
        f.write("# label offered acks p50_ms p99_ms p999_ms\n")
        for l in pts:
            ms = [f"{float(x) / 1000:.3f}" if x else "NaN" for x in l[4:7]]
            f.write(f"{l[0]} {l[1]} {l[2]} {' '.join(ms)}\n")
    with open(f"{wdir}/plot.refs.gp", "w", encoding="utf-8") as f:
        for var, key in (("dbb32", "db_bench.64K.sync1.batch32.ops_per_s"),
                         ("dbb1", "db_bench.64K.sync1.batch1.ops_per_s"),
                         ("dbb0", "db_bench.64K.sync0.batch32.ops_per_s"),
                         ("fioiops", "fio.64K.iops"),
                         ("fiop99", "fio.64K.sync_p99_us"),
                         ("fiop50", "fio.64K.sync_p50_us")):
            v = figs.get(key)
            f.write(f"{var} = {float(v) if isinstance(v, (int, float)) else 'NaN'}\n")
        f.write(f'host = "{machine.get("cpu_model", "?")}, {machine.get("cores", "?")} cores, '
                f'{machine.get("fs_type", "?")}, {machine.get("date", "")}"\n')

    w = max(len(k) for k in figs) if figs else 10
    print(f"{'figure':<{w}}  value")
    for k in sorted(figs):
        if not k.startswith("phase_seconds"):
            print(f"{k:<{w}}  {fmt(figs[k])}")
    print()
    print(f"{'target':<36} {'value':>9} {'target':>9}  result")
    for name, r in ratios.items():
        res = "n/a" if r["pass"] is None else ("pass" if r["pass"] else "MISS")
        if r.get("stretch_pass"):
            res += f" (stretch {r['stretch']} pass)"
        elif r.get("stretch") and r["pass"] is not None:
            res += f" (stretch {r['stretch']} miss)"
        if r["pass"] is None:
            res += " (missing: " + ", ".join(r["missing"]) + ")"
        print(f"{name:<36} {fmt(r['value']):>9} {r['op']}{fmt(r['target']):>7}  {res}")
    for name, v in info.items():
        print(f"{name:<36} {fmt(v):>9}  (no target)")
    if skipped:
        print()
        for k, v in skipped.items():
            print(f"skipped {k}: {v}")
    print()
    print(f"machine: {machine.get('cpu_model')}, {machine.get('cores')} cores, "
          f"{machine.get('kernel')}, {machine.get('fs_type')} on {machine.get('fs_source')}; "
          f"load average {machine.get('loadavg_start')} at start, {machine.get('loadavg_end')} at end")


main()
