#!/usr/bin/python3
"""0004-crash: SIGKILL in the middle of a long run, then a restart.

The worker is killed twice while it applies a long random history; each
restart resumes from the offsets stored in the database (its log says so,
and the transactional consumed-counter ends equal to the number of
messages: nothing was counted, so nothing was applied, twice). The final
state equals that of an uninterrupted reference run over the same topics.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, doctor_history, domain_rows,  # noqa
                    done, drained, no_drops, publish, reference_run, stats,
                    wait_until)


def progress(pg):
    return pg.query("SELECT coalesce(sum(next_offset), 0)"
                    " FROM clinicmig.consumer_offset")[0][0]


with Env() as env:
    msgs = doctor_history(seed=4, n_users=2000, n_changes=20000)
    publish(env.kafka.bootstrap, msgs)
    total = len(msgs)
    resumed = []
    extra = ["--batch-max-events", "200"]
    for kill_at in (total // 4, total // 2):
        w = env.worker(extra=extra)
        wait_until(f"progress past {kill_at}",
                   lambda: progress(env.pg) >= kill_at, 120, 0.02)
        w.kill()
        before = progress(env.pg)
        check_true(f"killed mid-run (stored {before} of {total})",
                   before < total)
        resumed.append(before)
    w = env.worker(extra=extra)
    wait_until("drained after restarts", lambda: drained(env.pg, env.kafka),
               180)
    w.stop()
    no_drops(env.kafka)
    starts = [int(x) for x in re.findall(
        r"assigned legacy\.public\.User \[\d+\] from offset (\d+)",
        w.output())]
    check_true("the last restart resumed from stored offsets, not from 0",
               sum(starts) >= resumed[-1], f"starts {starts}")
    s = stats(env.pg, "User")
    check("every message consumed exactly once across the crashes",
          s["consumed"], total)
    check("nothing dead-lettered", s["dead_lettered"], 0)
    got = domain_rows(env.pg, "v2")
    want = reference_run(env)
    check_true("the reference run built doctors",
               len(want["clinic_doctor"]) > 100)
    for table in want:
        check(f"{table} equals the uninterrupted run's", got[table],
              want[table])
done()
