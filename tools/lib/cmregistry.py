"""cmregistry.py -- a small schema registry: Confluent's REST API, the
calls clinicmig's workers and tools make. For the tests and the demo.

NOTES
GET /schemas/ids/{id} answers {"schema": "<text>"} for the ids of a dict
the caller may keep filling (avroconv.Writer.texts), 404 with Confluent's
error body for any other, and 401 without the right basic-auth
credentials (none asked when made with user=None).
POST /subjects/{subject}/versions with {"schema": "<text>"} registers a
schema as Debezium's AvroConverter does and answers {"id": N}: the id the
same text already has, else the next one (GET /subjects lists the
subjects); the subject keeps its versions
in order (`subjects`: {subject: [id, ...]}). `refuse` maps a subject to
(status, message) to answer as a registry that finds the schema
incompatible (409) or invalid (422) does. Each POST is kept in `posts` as
(subject, Content-Type).
It serves from a thread of the calling process; stop() and start() take it
away and bring it back on the same port, as a registry that goes down
does. With tls_dir it speaks https with a self-signed certificate for
127.0.0.1 made there by the openssl command (`ca` is its path, the CA a
client must trust). Setting `failing` to an HTTP status (503, say) makes
it answer every request with it, as a registry that is up but unwell
does. Requests are counted per id, so a test can tell a cached schema
from a fetched one, and per User-Agent, so a test can tell the worker's
requests from its tools'.

Run as a program (the demo does: tools/scripts/demo.sh --avro) it prints
its URL on the first line and serves until SIGTERM or SIGINT:

  cmregistry.py [--user-info USER:PASSWORD] [--port N]

Schemas live in memory only; nothing it logs holds a schema's content.
"""

import argparse
import base64
import http.server
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.parse

import cmrun


def _certificate(directory):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    cert = os.path.join(directory, "registry.pem")
    key = os.path.join(directory, "registry.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Registry:
    def __init__(self, schemas=None, user="registry", password="s3cret",
                 tls_dir=None, port=None):
        # {id: schema text}, read live
        self.schemas = {} if schemas is None else schemas
        self.subjects = {}              # {subject: [ids registered]}
        self.posts = []                 # [(subject, Content-Type)]
        self.refuse = {}                # {subject: (status, message)}
        self.lock = threading.Lock()
        self.tls = _certificate(tls_dir) if tls_dir else None
        self.ca = self.tls[0] if self.tls else None
        self.user_info = None if user is None else f"{user}:{password}"
        self.auth = None if user is None else "Basic " + base64.b64encode(
            self.user_info.encode()).decode()
        self.port = port or cmrun.free_port()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.requests = {}
        self.agents = {}                # {User-Agent or "": requests}
        self.failing = None
        self.server = None
        self.thread = None
        self.start()

    def _handler(self):
        reg = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type",
                                 "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self):
                """Sends 401 or the failing status; whether it did."""
                ua = self.headers.get("User-Agent") or ""
                with reg.lock:
                    reg.agents[ua] = reg.agents.get(ua, 0) + 1
                if reg.auth is not None and \
                        self.headers.get("Authorization") != reg.auth:
                    self._send(401, {"error_code": 401,
                                     "message": "Unauthorized"})
                    return True
                if reg.failing is not None:
                    self._send(reg.failing, {
                        "error_code": reg.failing, "message": "unavailable"})
                    return True
                return False

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if self._refused():
                    return None
                m = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
                try:
                    text = json.loads(body)["schema"]
                    if not isinstance(text, str):
                        raise TypeError("schema is not a string")
                    json.loads(text)
                except (ValueError, KeyError, TypeError):
                    return self._send(422, {"error_code": 42201,
                                            "message": "Invalid schema"})
                if not m:
                    return self._send(404, {"error_code": 404,
                                            "message": "Not found"})
                subject = urllib.parse.unquote(m.group(1))
                reg.posts.append((subject, self.headers.get("Content-Type")))
                if subject in reg.refuse:
                    status, message = reg.refuse[subject]
                    return self._send(status, {"error_code": status,
                                               "message": message})
                return self._send(200, {"id": reg.register(subject, text)})

            def do_GET(self):
                if self._refused():
                    return None
                if self.path == "/subjects":
                    with reg.lock:
                        return self._send(200, sorted(reg.subjects))
                m = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                sid = int(m.group(1)) if m else None
                reg.requests[sid] = reg.requests.get(sid, 0) + 1
                if sid not in reg.schemas:
                    return self._send(404, {"error_code": 40403,
                                            "message": "Schema not found"})
                return self._send(200, {"schema": reg.schemas[sid]})

        return Handler

    def register(self, subject, text):
        """The id of the schema @p text, registered under @p subject."""
        with self.lock:
            sid = next((i for i, t in self.schemas.items() if t == text),
                       None)
            if sid is None:
                sid = max(self.schemas, default=0) + 1
                self.schemas[sid] = text
            ids = self.subjects.setdefault(subject, [])
            if sid not in ids:
                ids.append(sid)
            return sid

    def subject_of(self, sid):
        """The subjects that hold id @p sid."""
        return sorted(s for s, ids in self.subjects.items() if sid in ids)

    def start(self):
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), self._handler())
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket,
                                                 server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.server = None

    def options(self):
        """The worker's schema.registry.* options that reach it."""
        out = {"schema.registry.url": self.url}
        if self.user_info is not None:
            out["schema.registry.basic.auth.user.info"] = self.user_info
        if self.ca is not None:
            out["schema.registry.ssl.ca.location"] = self.ca
        return out

    def worker_options(self):
        out = ["--schema-registry-url", self.url]
        if self.user_info is not None:
            out += ["-X", "schema.registry.basic.auth.user.info="
                    f"{self.user_info}"]
        return out + ["--schema-registry-timeout-ms", "1000"]


def main(argv):
    ap = argparse.ArgumentParser(
        prog="cmregistry.py",
        description="A small schema registry (Confluent's REST API: GET "
                    "/schemas/ids/ID, POST /subjects/SUBJECT/versions) on "
                    "127.0.0.1, schemas in memory. Prints its URL on the "
                    "first line; serves until SIGTERM or SIGINT.")
    ap.add_argument("--user-info", metavar="USER:PASSWORD",
                    help="ask for these basic-auth credentials (default: "
                         "none asked)")
    ap.add_argument("--port", type=int, default=0,
                    help="port (default: a free one)")
    a = ap.parse_args(argv)
    if a.user_info is not None and ":" not in a.user_info:
        ap.error("--user-info: expected USER:PASSWORD")
    user, password = (a.user_info.split(":", 1) if a.user_info
                      else (None, None))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    reg = Registry(user=user, password=password, port=a.port or None)
    print(reg.url, flush=True)
    try:
        done.wait()
    finally:
        reg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
