#!/usr/bin/python3
"""kafkactl.py -- drive clinicmig-kafka (the local Kafka cluster) from Python.

NOTES
Starts tools/kafka/clinicmig-kafka as a child process, reads the bootstrap
address from its first stdout line and talks to its control channel (one
command per line on stdin, one "ok ..." / "error ..." line back on stdout).
Every read has a deadline, so a wedged tool fails the test instead of
hanging it. The mock keeps only about 5 MiB per partition: tests call
dropped(topic) and expect 0.

    with LocalKafka(binary, {"events": 4}) as kafka:
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        ...
        assert kafka.dropped("events") == 0

Run this file by hand for a self-test (needs python3-confluent-kafka):
    /usr/bin/python3 tools/lib/kafkactl.py BUILD/tools/kafka/clinicmig-kafka
"""

import os
import selectors
import subprocess
import sys
import time


class KafkaToolError(RuntimeError):
    """The tool replied "error ...", died, or did not answer in time."""


class LocalKafka:
    """A running clinicmig-kafka: .bootstrap, .cmd() and helpers."""

    def __init__(self, binary, topics, brokers=3, timeout=30.0,
                 stderr=None):
        """Starts the tool with the given {name: partitions} topics.

        timeout bounds every wait for a reply, in seconds. stderr is passed
        to subprocess (None: inherit, so the tool's logs show in the test's).
        """
        args = [binary, "--brokers", str(brokers)]
        for name, partitions in topics.items():
            args += ["--topic", f"{name}:{partitions}"]
        self.timeout = timeout
        self._buf = b""
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=stderr)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._proc.stdout, selectors.EVENT_READ)
        try:
            self.bootstrap = self._readline()
        except Exception:
            self._kill()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _readline(self):
        """Returns the next stdout line, waiting at most self.timeout."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise KafkaToolError("no reply from clinicmig-kafka "
                                     f"in {self.timeout:g} s")
            chunk = os.read(self._proc.stdout.fileno(), 65536)
            if not chunk:
                raise KafkaToolError("clinicmig-kafka exited "
                                     f"(status {self._proc.wait()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line):
        """Sends one control command; returns the text after "ok"."""
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()
        reply = self._readline()
        if reply == "ok":
            return ""
        if reply.startswith("ok "):
            return reply[3:]
        raise KafkaToolError(f"{line}: {reply}")

    def topic(self, name, partitions):
        self.cmd(f"topic {name} {partitions}")

    def watermarks(self, topic):
        """Returns {partition: (low, high)}."""
        marks = {}
        for entry in self.cmd(f"watermarks {topic}").split():
            p, low, high = (int(x) for x in entry.split(":"))
            marks[p] = (low, high)
        return marks

    def dropped(self, topic):
        """Messages the mock dropped from the start of topic's partitions."""
        return int(self.cmd(f"dropped {topic}"))

    def broker_down(self, broker_id):
        self.cmd(f"broker-down {broker_id}")

    def broker_up(self, broker_id):
        self.cmd(f"broker-up {broker_id}")

    def rtt(self, broker_id, ms):
        self.cmd(f"rtt {broker_id} {ms}")

    def request_errors(self, api_key, *errors):
        self.cmd(f"request-errors {api_key} " + " ".join(map(str, errors)))

    def stop(self):
        """Sends quit and waits; returns the exit status. Idempotent."""
        if self._proc.poll() is None:
            try:
                self.cmd("quit")
                return self._proc.wait(timeout=self.timeout)
            except (KafkaToolError, OSError, subprocess.TimeoutExpired):
                self._kill()
        self._close()
        return self._proc.returncode

    def _kill(self):
        self._proc.kill()
        self._proc.wait()
        self._close()

    def _close(self):
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._sel.close()


def _self_test(binary):
    from confluent_kafka import Consumer, Producer

    with LocalKafka(binary, {"selftest": 3}) as kafka:
        print("bootstrap", kafka.bootstrap)
        producer = Producer({"bootstrap.servers": kafka.bootstrap,
                             "message.timeout.ms": 10000})
        for i in range(50):
            producer.produce("selftest", key=str(i), value=f"v{i}")
        assert producer.flush(15) == 0, "undelivered messages"
        marks = kafka.watermarks("selftest")
        assert sorted(marks) == [0, 1, 2], marks
        assert sum(h - lo for lo, h in marks.values()) == 50, marks
        assert kafka.dropped("selftest") == 0
        kafka.broker_down(2)
        kafka.broker_up(2)
        consumer = Consumer({"bootstrap.servers": kafka.bootstrap,
                             "group.id": "selftest",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe(["selftest"])
        seen, deadline = 0, time.monotonic() + 30
        while seen < 50 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                seen += 1
        consumer.close()
        assert seen == 50, f"consumed {seen} of 50"
        try:
            kafka.cmd("watermarks nosuch")
            raise AssertionError("no error for an unknown topic")
        except KafkaToolError:
            pass
        assert kafka.stop() == 0
    print("kafkactl self-test passed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kafkactl.py PATH/TO/clinicmig-kafka")
    _self_test(sys.argv[1])
