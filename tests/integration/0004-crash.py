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
from cmtest import (Env, check, check_like_reference, check_true,  # noqa
                    doctor_history, done, drained, progress, publish, stats,
                    wait_progress, wait_until)


def migrations():
    """(version, name) of every migration in schemas/migrations/."""
    d = os.path.join(os.path.dirname(__file__), "..", "..", "schemas",
                     "migrations")
    return sorted((int(f[:4]), f[5:-4]) for f in os.listdir(d)
                  if re.match(r"^[0-9]{4}_.*\.sql$", f))


with Env() as env:
    msgs = doctor_history(seed=4, n_users=2000, n_changes=20000)
    publish(env.kafka.bootstrap, msgs)
    total = len(msgs)
    resumed = []
    extra = ["--batch-max-events", "200"]
    for kill_at in (total // 4, total // 2):
        w = env.worker(extra=extra)
        wait_progress(env.pg, kill_at)
        w.kill()
        before = progress(env.pg)
        check_true(f"killed mid-run (stored {before} of {total})",
                   before < total)
        resumed.append(before)
    w = env.worker(extra=extra)
    wait_until("drained after restarts", lambda: drained(env.pg, env.kafka),
               180)
    w.stop()
    starts = [int(x) for x in re.findall(
        r"assigned legacy\.public\.User \[\d+\] from offset (\d+)",
        w.output())]
    check_true("the last restart resumed from stored offsets, not from 0",
               sum(starts) >= resumed[-1], f"starts {starts}")
    check("nothing dead-lettered", stats(env.pg, "User")["dead_lettered"], 0)
    check("three starts applied each migration once", env.pg.query(
        "SELECT version, name FROM clinicmig.schema_version ORDER BY 1"),
        migrations())
    check_like_reference(env, msgs, "the uninterrupted run's")
done()
