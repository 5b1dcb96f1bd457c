#!/usr/bin/python3
"""0080-bench-smoke: the benchmark (tools/bench, docs/performance.md) at a
small N, for correctness only: no timing is asserted.

tools/bench/run.sh with 2000 messages, one run of each measurement, both
backlog variants and the scaling report at two sizes must exit 0: every
system's result checked (the oracle for clinicmig, the copied rows for
the ceiling, the mirror and v2 rows for the baselines), and the JSON
written with every field. Then the checks are shown to fail when they
should: a worker that maps patients differently (--patients-match
strict, while the oracle expects loose) is fast and wrong, so the
benchmark must exit 1 and name the oracle; and the baselines' table
checks must report a mirror row that differs from the legacy row. The
wrong worker's run also takes --statements: its statements, as
pg_stat_statements counted them, are in the JSON and the summary.
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, PgServer, check, check_true, done  # noqa

BENCH = os.path.join(ROOT, "tools", "bench")
tmp = tempfile.mkdtemp(prefix="cm-bench-smoke-")
cache = os.path.join(tmp, "cache")
SYSTEMS = ["ceiling", "clinicmig-1", "clinicmig-2", "per-event", "batched",
           "node"]
RUN_FIELDS = ["events_per_s", "seconds", "latency_ms_p50", "latency_ms_p99",
              "peak_rss_kib"]


def bench(*args, command=None, build=BUILD):
    env = dict(os.environ, CM_BUILD_DIR=build)
    return subprocess.run((command or [os.path.join(BENCH, "run.sh")]) +
                          ["--events", "2000", "--repeat", "1",
                           "--cache", cache, "--timeout", "300", *args],
                          capture_output=True, text=True, timeout=900,
                          env=env)


def load_bench_module():
    loader = importlib.machinery.SourceFileLoader(
        "clinicmig_bench", os.path.join(BENCH, "clinicmig-bench"))
    spec = importlib.util.spec_from_loader("clinicmig_bench", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


try:
    # -- the whole benchmark, small --------------------------------------
    out = os.path.join(tmp, "results.json")
    r = bench("--variant", "both", "--scaling", "--scaling-sizes",
              "1000,2000", "--out", out)
    if not check("run.sh exits 0", r.returncode, 0):
        print("# " + (r.stdout + r.stderr)[-3000:].replace("\n", "\n# "))
    res = json.load(open(out)) if os.path.exists(out) else {}
    check("the results say every check passed", res.get("ok"), True)
    for key in ("version", "date", "machine", "params", "variants",
                "scaling", "seconds"):
        check_true(f"results have {key}", key in res)
    for variant in ("mixed", "insert"):
        v = res.get("variants", {}).get(variant, {})
        b = v.get("backlog", {})
        check_true(f"{variant}: at least 2000 messages",
                   b.get("messages", 0) >= 2000, b.get("messages"))
        ops = set(b.get("by_op", {}))
        if variant == "mixed":
            check(f"{variant}: inserts, updates, deletes and a snapshot",
                  sorted(ops), ["c", "d", "r", "u"])
            check_true(f"{variant}: tombstones", b.get("tombstones", 0) > 0)
        else:
            check(f"{variant}: snapshot reads only", sorted(ops), ["r"])
        check(f"{variant}: three topics", len(b.get("partitions", {})), 3)
        check(f"{variant}: every system measured",
              list(v.get("systems", {})), SYSTEMS)
        for s, sr in v.get("systems", {}).items():
            runs = sr.get("runs", [])
            check(f"{variant} {s}: one run", len(runs), 1)
            for run in runs:
                check_true(f"{variant} {s}: checked and passed",
                           run.get("ok"), run.get("check"))
                missing = [f for f in RUN_FIELDS if run.get(f) is None]
                check(f"{variant} {s}: every figure present", missing, [])
            check(f"{variant} {s}: medians of every figure",
                  sorted(k for k, x in sr.get("median", {}).items()
                         if x is not None), sorted(RUN_FIELDS))
        for s in ("clinicmig-1", "clinicmig-2"):
            runs = v.get("systems", {}).get(s, {}).get("runs", [{}])
            check(f"{variant} {s}: checked by the oracle",
                  runs[0].get("check"), "oracle: no difference")
            check(f"{variant} {s}: every message consumed once",
                  runs[0].get("consumed"), b.get("messages"))
        ratios = v.get("ratios", {})
        check(f"{variant}: eight ratios, all computed",
              sorted(k for k, x in ratios.items() if x), sorted(
                  f"{cm}/{o}" for cm in ("clinicmig-1", "clinicmig-2")
                  for o in ("ceiling", "per-event", "batched", "node")))
        sc = res.get("scaling", {}).get(variant, {})
        points = sc.get("points", [])
        check(f"{variant}: scaling at two sizes",
              [p.get("events", 0) >= n for p, n in zip(points, (1000, 2000))],
              [True, True])
        check_true(f"{variant}: scaling figures and growth",
                   all(p.get("ok") and p.get("events_per_s") and
                       p.get("peak_rss_kib") for p in points) and
                   sc.get("rss_growth"), sc)
    for s in SYSTEMS:
        check_true(f"the summary table has {s}",
                   any(line.startswith(s + " ") for line in
                       r.stdout.splitlines()), r.stdout[-500:])
    check_true("the summary prints the ratios",
               "clinicmig-1/ceiling" in r.stdout)

    # -- a fast wrong answer is a failure --------------------------------
    fake = os.path.join(tmp, "fake-build")
    for sub in ("worker", "tools/kafka", "tools/oracle"):
        os.makedirs(os.path.join(fake, sub))
    for rel in ("tools/kafka/clinicmig-kafka", "tools/oracle/clinicmig-oracle"):
        os.symlink(os.path.join(BUILD, rel), os.path.join(fake, rel))
    wrong = os.path.join(fake, "worker", "clinicmig-worker")
    with open(wrong, "w") as f:
        f.write("#!/bin/sh\nexec " + os.path.join(BUILD, "worker",
                                                  "clinicmig-worker") +
                ' "$@" --patients-match strict\n')
    os.chmod(wrong, 0o755)
    out2 = os.path.join(tmp, "wrong.json")
    r = bench("--variant", "mixed", "--systems", "clinicmig-1", "--out", out2,
              "--build", fake, "--statements",
              command=[sys.executable, os.path.join(BENCH, "clinicmig-bench")],
              build=fake)
    check("a wrong worker makes the benchmark exit 1", r.returncode, 1)
    res2 = json.load(open(out2)) if os.path.exists(out2) else {}
    run = res2.get("variants", {}).get("mixed", {}).get("systems", {}).get(
        "clinicmig-1", {}).get("runs", [{}])[0]
    check("its run failed the oracle",
          (run.get("ok"), run.get("check", "")[:8]), (False, "oracle: "))
    check_true("the summary says FAILED", "FAILED" in r.stdout, r.stdout)
    kept = re.search(r"logs of the failed runs kept in (\S+)", r.stderr)
    check_true("the failed run's logs and oracle output are kept",
               kept and os.path.exists(os.path.join(
                   kept.group(1), "mixed_clinicmig_1_0-oracle.txt")),
               r.stderr[-500:])
    if kept:
        shutil.rmtree(kept.group(1), ignore_errors=True)
    # --statements: the worker's statements as pg_stat_statements saw them
    st = run.get("statements") or []
    check_true("--statements: the run's statements by execution time",
               st and all(x["total_ms"] >= y["total_ms"]
                          for x, y in zip(st, st[1:])), st[:2])
    check_true("--statements: planning and JIT times of each", st and all(
        x["plan_ms"] >= 0 and x["jit_ms"] >= 0 for x in st), st[:2])
    check_true("--statements: the mirror upserts among them", any(
        x["query"].startswith("INSERT INTO clinicmig.mirror_") for x in st),
        [x["query"][:60] for x in st])
    check_true("--statements: printed after the summary",
               "statements by execution time (pg_stat_statements)" in
               r.stdout, r.stdout[-800:])

    # -- the baselines' checks see a wrong row ---------------------------
    mod = load_bench_module()
    pg = PgServer()
    try:
        pg.execute("CREATE DATABASE legacy")
        pg.execute("CREATE DATABASE target")
        legacy = pg.conninfo.replace("dbname=postgres", "dbname=legacy")
        target = pg.conninfo.replace("dbname=postgres", "dbname=target")
        with open(os.path.join(ROOT, "schemas", "legacy.sql")) as f:
            mod.query(legacy, f.read())
        mod.query(legacy, 'INSERT INTO "User" (id, "clinicId", email,'
                  ' "firstName", "lastName", role, "createdAt", "updatedAt")'
                  " VALUES (1, 1, 'a@b.c', 'A', 'B', 'ADMIN',"
                  " '2025-01-01 00:00+00', '2025-01-01 00:00+00')")
        mod.Bench.migrate(target)
        mod.query(target, "INSERT INTO clinicmig.mirror_user (id, clinic_id,"
                  " email, first_name, last_name, role, is_active,"
                  " created_at, updated_at) VALUES (1, 1, 'x@b.c', 'A', 'B',"
                  " 'ADMIN', true, '2025-01-01 00:00+00', '2025-01-01 00:00+00')")

        class Legacy:
            pass
        bl = Legacy()
        bl.legacy = legacy
        check("a differing mirror row fails the baseline check",
              mod.Bench.baseline_checks(None, bl, target),
              "mirror_user = User: 1 rows, 1 expected, rows differ")
        mod.query(target, "UPDATE clinicmig.mirror_user SET email = 'a@b.c'")
        check("the same row passes it",
              mod.Bench.baseline_checks(None, bl, target), None)
    finally:
        pg.destroy()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
done()
