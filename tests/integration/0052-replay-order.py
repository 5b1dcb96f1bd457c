#!/usr/bin/python3
"""0052-replay-order: a backfill's rows are ordered against live events by
MVCC visibility, never by LSN (docs/design.md §2.2).

Crafted replay messages (as clinicmig-replay db publishes them) and live
events with chosen transaction ids, each case on its own user id and in
both arrival orders where order could matter:
  - a snapshot row replaces a live version whose transaction it sees;
  - a live change whose transaction was in progress at the snapshot (its
    LSN below the snapshot's position, so LSN order would call it older)
    wins over the snapshot row, whichever arrives first;
  - a live change the snapshot already holds is stale after it;
  - of two snapshots the later wins, whichever arrives first;
  - a 32-bit txId is widened against the snapshot's epoch;
  - a range marker deletes the mirror rows its snapshot does not hold,
    keeps the ones it holds and the ones changed after it, and a late
    live insert of an absent row that the snapshot saw deleted stays
    deleted, while one committed after the snapshot is applied.
Each race's first message is drained before its second is published, so
the order is the one named, and the losers' stale count is exact.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (REPLAY, Env, check, check_true, done, drained, message,  # noqa
                    publish, range_marker, replay_row, stats, tombstone,
                    user, wait_until)

S1 = "1000:1010:1003,1007"       # snapshot: 1003 and 1007 in progress
S2 = "1020:1030:"                # a later snapshot
EPOCH = 1 << 32
S_EPOCH = f"{EPOCH + 500}:{EPOCH + 510}:{EPOCH + 505}"
S_WRAP = f"{EPOCH + 5}:{EPOCH + 10}:"  # just past the wrap of the xid


def live(uid, op, last, lsn, tx):
    if op == "d":
        return message("User", "d", uid, lsn, tx_id=tx)
    return message("User", op, user(uid, email=f"u{uid}@example.org",
                                    last=last), lsn, tx_id=tx)


def snap_row(uid, last, snap, lsn=50000):
    return replay_row("User", user(uid, email=f"u{uid}@example.org",
                                   last=last), snap, lsn)


def run(env, msgs):
    publish(env.kafka.bootstrap, msgs)
    wait_until("drained", lambda: drained(env.pg, env.kafka))


def names(pg):
    rows = pg.query("SELECT id, CASE WHEN deleted THEN NULL ELSE last_name"
                    " END FROM clinicmig.mirror_user ORDER BY id")
    return dict(rows)


with Env() as env:
    env.worker()
    # first wave: the live versions the snapshots meet
    run(env, [
        live(1, "c", "live-seen", 40000, 1001),      # seen by S1
        live(2, "c", "live-old", 40000, 1001),
        live(6, "c", "e-old", 40000, 400),           # xid 400 of epoch 1
        live(8, "c", "w-old", 40000, 4294967290),    # just before the wrap
        live(10, "c", "gone", 40000, 1001),          # deleted in S1
        live(11, "c", "kept", 40000, 1002),          # present in S1
        live(12, "c", "newer", 40100, 1012),         # after S1
    ])
    # second wave, in two drained halves so that each race meets in the
    # order its comment says (one run of both topics would interleave
    # them as the worker's collection happens to meet them)
    run(env, [
        snap_row(1, "snap", S1),
        # 2: in progress at S1 (xip), lower LSN than S1's 50000: the live
        # change is newer although LSN order says older; snapshot first
        snap_row(2, "snap", S1),
        # 3: the same race, live change first
        live(3, "c", "in-progress", 40500, 1007),
        # 4: a live change S1 already holds arrives after it: stale
        snap_row(4, "snap", S1),
        # 5: two snapshots, the earlier one last
        snap_row(5, "later", S2),
        # 6: a snapshot of epoch 1 sees txId 400 (of epoch 1) as past
        snap_row(6, "epoch", S_EPOCH),
        # 7: in epoch 1, xid 505 was in progress: the live change wins
        snap_row(7, "epoch", S_EPOCH),
        # 8: xid 2^32-6 committed before a snapshot taken past the wrap
        snap_row(8, "wrap", S_WRAP),
        # the range marker of S1 over ids 10..20: 11 present, 10 and 12
        # absent; 13 was inserted and deleted before S1 and its insert
        # arrives late; 14 is inserted after S1
        range_marker("User", 10, 20, [(11, 11)], S1),
    ])
    run(env, [
        live(2, "u", "in-progress", 40500, 1003),
        snap_row(3, "snap", S1),
        live(4, "c", "older", 40600, 1005),
        snap_row(5, "earlier", S1),
        live(7, "c", "in-progress", 40700, 505),
        live(13, "c", "late-insert", 40800, 1002),
        live(14, "c", "after", 40900, 1015),
    ])
    got = names(env.pg)
    check("a snapshot row replaces a live version it sees", got.get(1),
          "snap")
    check("a live change in progress at the snapshot wins (snapshot "
          "first), although its LSN is lower", got.get(2), "in-progress")
    check("... and when it arrives first", got.get(3), "in-progress")
    check("a live change the snapshot holds is stale", got.get(4), "snap")
    check("the later snapshot wins", got.get(5), "later")
    check("a 32-bit txId is widened against the snapshot's epoch",
          got.get(6), "epoch")
    check("an xid in progress in epoch 1 is not visible", got.get(7),
          "in-progress")
    check("an xid from before the wrap is visible after it", got.get(8),
          "wrap")
    check("a range marker deletes a row its snapshot does not hold",
          got.get(10, "absent"), None)
    check("... keeps a row it holds", got.get(11), "kept")
    check("... keeps a row changed after it", got.get(12), "newer")
    # absent, or deleted by the marker when the insert came first
    check("a late insert of a row the snapshot saw deleted stays deleted",
          got.get(13), None)
    check("an insert committed after the snapshot is applied", got.get(14),
          "after")
    check("the range is recorded", env.pg.query(
        "SELECT tbl, first_id, last_id, present::text, snap_xmin, snap_xmax,"
        " snap_xip FROM clinicmig.snapshot_range"),
        [("User", 10, 20, "{[11,12)}", 1000, 1010, [1003, 1007])])
    check("the new schema follows: doctor 10 is gone, 11 and 12 stay",
          env.pg.query("SELECT id FROM v2.clinic_doctor WHERE id BETWEEN 10"
                       " AND 20 ORDER BY id"), [(11,), (12,), (14,)])
    s = stats(env.pg, "User")
    # every message counts once, as applied or as stale; the losers of
    # the races, which met in a fixed order, are stale: snapshot 3, live
    # change 4, the earlier snapshot of 5 and the late insert of 13
    check("every message counted once, applied or stale",
          (s["consumed"], s["applied"] + s["stale"]), (23, 23))
    check("the losers of the races are counted stale", s["stale"], 4)
    # replayed again: nothing moves
    before = env.pg.query("SELECT * FROM v2.clinic_doctor ORDER BY id")
    run(env, [snap_row(1, "snap", S1), range_marker("User", 10, 20,
                                                    [(11, 11)], S1)])
    check("the same snapshot again changes nothing", env.pg.query(
        "SELECT * FROM v2.clinic_doctor ORDER BY id"), before)
    check("a range replayed is recorded once", env.pg.query(
        "SELECT count(*) FROM clinicmig.snapshot_range")[0][0], 1)
done()
