#!/usr/bin/python3
"""0030-property: convergence over random histories, orders and crashes.

For each seed, clinicmig-gen applies a random history (inserts, updates
that merge and split patient groups and move doctors between email groups,
role changes, appointment moves, deletes, dangling references) to a real
legacy database and derives its Debezium events; they are published with
each topic-partition's order kept but the partitions interleaved at random
and about a tenth redelivered, while 1 to 3 workers run and are killed
with SIGKILL and restarted at random moments. A third of the messages,
chosen by the seed one by one (so every topic mixes both formats), are
re-encoded as Debezium's AvroConverter writes them (tools/lib/avroconv.py:
python3-avro, Confluent's wire format), their writer schemas served by a
schema registry of the test's own (tools/lib/cmregistry.py) that the
workers are given. After the topics drain, the oracle -- f computed from
the final legacy tables -- must find no difference in the new schema,
nothing may be dead-lettered, and the workers must have fetched the
schemas of the Avro messages they applied.

  0030-property.py                 the fixed seeds (CI)
  0030-property.py --fresh N       N new random seeds
  0030-property.py --seeds 7,42    these seeds again
A failing seed is printed with the command that replays it.
"""
import argparse
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, check, check_true, done  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
from avroconv import USER_AGENT, Writer  # noqa: E402
from cmregistry import Registry  # noqa: E402
from rehearse import Rehearsal, read_kcat_lines  # noqa: E402

GEN = os.path.join(ROOT, "tools", "gen", "clinicmig-gen")
FIXED = [1, 2, 3, 4, 5, 6, 7, 8]
AVRO_SHARE = 1 / 3


def params(seed):
    """Everything a seed decides, so that a seed replays exactly."""
    rnd = random.Random(seed * 7919)
    return {"workers": 1 + seed % 3,
            "match": "strict" if seed % 5 == 0 else "loose",
            "steps": rnd.randrange(150, 400),
            "scale": 1 + seed % 2,
            "duplicates": 0.1}


def generate(r, seed, p):
    conninfo = r.create_db(f"p{seed}")
    out = os.path.join(r.pg.dir, f"p{seed}.jsonl")
    hist = os.path.join(r.pg.dir, f"p{seed}-history.jsonl")
    subprocess.run([GEN, "seed", "--db", conninfo, "--scale",
                    str(p["scale"])], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([GEN, "snapshot", "--db", conninfo, "--out", out],
                   check=True, stderr=subprocess.DEVNULL)
    subprocess.run([GEN, "history", "--db", conninfo, "--seed", str(seed),
                    "--steps", str(p["steps"]), "--out", hist], check=True,
                   stderr=subprocess.DEVNULL)
    with open(out, "a") as f, open(hist) as h:
        f.write(h.read())
    return conninfo, read_kcat_lines(out)


def some_in_avro(lines, seed, writer):
    """@lines with a share of them, chosen by @seed one by one, in Avro;
    and how many."""
    rnd = random.Random(seed * 104729)
    out = [writer.convert(m) if rnd.random() < AVRO_SHARE else m
           for m in lines]
    return out, sum(1 for m in out if "payload_b64" in m or "key_b64" in m)


def workers_fetched(registry):
    """Requests the registry had from others than the tools' client."""
    return sum(n for agent, n in registry.agents.items()
               if agent != USER_AGENT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", type=int, default=0, metavar="N")
    ap.add_argument("--seeds", default="")
    a = ap.parse_args()
    if a.seeds:
        seeds = [int(s) for s in a.seeds.split(",")]
    elif a.fresh:
        seeds = random.SystemRandom().sample(range(1000, 10**9), a.fresh)
    else:
        seeds = FIXED
    r = Rehearsal(BUILD, verbose=bool(a.fresh or a.seeds))
    writer = Writer()
    registry = Registry(writer.texts)
    failed = []
    try:
        for seed in seeds:
            p = params(seed)
            conninfo, lines = generate(r, seed, p)
            lines, in_avro = some_in_avro(lines, seed, writer)
            fetched = workers_fetched(registry)
            run = r.run(f"p{seed}", conninfo, lines, workers=p["workers"],
                        chaos=True, seed=seed, duplicates=p["duplicates"],
                        match=p["match"], schemas=registry.options())
            ok = check_true(
                f"seed {seed}: {run.messages} messages, {p['workers']} "
                f"workers, {run.kills} kills, {p['match']}: the oracle "
                f"finds no difference", run.ok,
                (run.oracle_output.strip().replace("\n", "; ")[:600] +
                 (f" sanitizer reports in {run.sanitizer}"
                  if run.sanitizer else "")))
            if not ok:
                failed.append(seed)
                print(f"# FAILED seed {seed}; replay with: "
                      f"{sys.argv[0]} --seeds {seed}", flush=True)
            check(f"seed {seed}: nothing dead-lettered",
                  run.report.splitlines()[-1].split()[-1], "0")
            check_true(f"seed {seed}: workers were killed", run.kills > 0)
            check_true(f"seed {seed}: {in_avro} of {len(lines)} messages "
                       f"in Avro, {run.avro} published", 0 < in_avro <
                       len(lines) and run.avro >= in_avro)
            check_true(f"seed {seed}: the workers fetched the Avro writer "
                       "schemas", workers_fetched(registry) > fetched,
                       registry.agents)
    finally:
        registry.stop()
        r.close()
    if failed:
        print(f"# failing seeds: {','.join(map(str, failed))}")
    done()


main()
