#!/usr/bin/python3
"""0085-one-arena: the worker's threads share one malloc arena.

glibc gives every thread that allocates an arena of its own, reserved
64 MiB at a time; what librdkafka's threads leave in theirs raised the
worker's peak RSS by about a sixth (docs/performance.md §5). The worker
asks for one arena, unless the operator set MALLOC_ARENA_MAX. A thread
arena shows in /proc/<pid>/maps as a 64 MiB-aligned reservation, its
used part followed by its unused, inaccessible rest: counted here after
a drain, none with the worker's own setting, some with the operator's.
Skipped in the sanitizer build, whose allocator is not glibc's.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, done, drained, message,  # noqa
                    patient, publish, user, wait_until)

if os.environ.get("CM_SANITIZE") == "ON":
    print("the sanitizer build has its own allocator: skipped")
    sys.exit(77)

HEAP = 64 << 20


def arenas(pid):
    """Thread arenas in a process's address space."""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            maps.append((lo, hi, fields[1], len(fields) > 5))
    n = 0
    for i, (lo, hi, perms, named) in enumerate(maps):
        if lo % HEAP or named or not perms.startswith("rw"):
            continue
        end = hi
        if i + 1 < len(maps) and maps[i + 1][0] == hi and \
                maps[i + 1][2].startswith("---"):
            end = maps[i + 1][1]
        n += end - lo == HEAP
    return n


def drain(env, name, first):
    w = env.worker(name=name)
    publish(env.kafka.bootstrap, [
        message("User", "c", user(first + i, email=f"d{first + i}@x.org"),
                first + i) for i in range(200)] + [
        message("Patient", "c", patient(first + i, phone=f"+7916{first + i:07d}"),
                1000 + first + i) for i in range(200)])
    wait_until(f"{name} drained", lambda: drained(env.pg, env.kafka),
               timeout=60)
    return w


with Env() as env:
    w = drain(env, "w1", 1)
    check("with the worker's own setting, no thread arena",
          arenas(w.proc.pid), 0)
    w.stop()
    os.environ["MALLOC_ARENA_MAX"] = "8"
    try:
        w = drain(env, "w2", 1000)
        check_true("with the operator's MALLOC_ARENA_MAX, thread arenas",
                   arenas(w.proc.pid) > 0)
        w.stop()
    finally:
        del os.environ["MALLOC_ARENA_MAX"]
done()
