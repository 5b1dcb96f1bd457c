#!/usr/bin/python3
"""0071-avro-registry-tls: the schema registry over https, with basic auth.

clinicmig-decode (the worker's decoder and schema source) reads Avro
messages whose schemas a registry of the test's own serves over https
with a self-signed certificate. With the certificate as
schema.registry.ssl.ca.location and the right credentials the message
decodes; without the CA, or with a wrong password, the registry cannot
answer, which is a retry ("status": "error"), never a dead letter; an id
the registry lacks is a dead letter. The worker refuses a registry URL
that is not http(s) and a schema.dir that is not a directory, with one
line and status 2.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, WORKER, check, check_true, done, user  # noqa
import cmavro  # noqa: E402
from cmregistry import Registry  # noqa: E402

DECODE = os.path.join(BUILD, "tools", "decode", "clinicmig-decode")


def decode(lines, *args):
    out = subprocess.run([DECODE, *args], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in out.stdout.splitlines()]


def line(topic, key, value):
    return json.dumps({"topic": topic, "partition": 0, "offset": 0,
                       "key_b64": base64.b64encode(key).decode(),
                       "payload_b64": base64.b64encode(value).decode()})


with tempfile.TemporaryDirectory() as tmp:
    w = cmavro.Writer()
    topic, key, value = w.message("User", "c", user(7), 100)
    good = line(topic, key, value)
    unknown = line(topic, key, b"\0\0\0\x03\xe7" + value[5:])
    reg = Registry(w.texts, tls_dir=tmp)
    try:
        opts = ["--schema-registry-url", reg.url,
                "--schema-registry-basic-auth-user-info", reg.user_info]
        got = decode([good, unknown], *opts,
                     "--schema-registry-ssl-ca-location", reg.ca)
        check("https with the CA and credentials: applied, then an unknown "
              "id dead-lettered",
              [(g["status"], g.get("reason")) for g in got],
              [("apply", None), ("dead_letter",
                                 "value: schema id 999: not found in the "
                                 "registry")])
        check("the event decoded over https", got[0]["event"]["after"]["id"],
              7)
        got = decode([good], *opts)
        check("without the CA: not a dead letter but an error to retry",
              got[0]["status"], "error")
        check_true("the reason names the registry", "schema registry" in
                   got[0]["reason"], got[0]["reason"])
        got = decode([good], "--schema-registry-url", reg.url,
                     "--schema-registry-ssl-ca-location", reg.ca,
                     "--schema-registry-basic-auth-user-info",
                     "registry:wrong")
        check("a wrong password: an error to retry",
              (got[0]["status"], got[0]["reason"]),
              ("error", "value: schema registry: HTTP status 401 for "
                        "schema id 2"))
    finally:
        reg.stop()

base = [WORKER, "--db-conninfo", "host=/nonexistent",
        "--bootstrap-servers", "127.0.0.1:1"]
for args, want in (
        (["--schema-registry-url", "ftp://registry"],
         'clinicmig-worker: schema.registry.url: expected an http:// or '
         'https:// URL, got "ftp://registry"\n'),
        (["--schema-dir", "/nonexistent/schemas"],
         'clinicmig-worker: schema.dir: "/nonexistent/schemas" is not a '
         'directory\n')):
    r = subprocess.run(base + args, capture_output=True, text=True,
                       timeout=30)
    check(f"{args[0]}: status 2 and one line", (r.returncode, r.stderr),
          (2, want))
done()
