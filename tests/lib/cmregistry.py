"""cmregistry.py -- a schema registry for the tests: Confluent's REST API,
the calls clinicmig makes.

NOTES
GET /schemas/ids/{id} answers {"schema": "<text>"} for the ids of a dict
the test keeps filling (cmavro.Writer.texts), 404 with Confluent's error
body for any other, and 401 without the right basic-auth credentials. It
serves from a thread of the test process; stop() and start() take it away
and bring it back on the same port, as a registry that goes down does.
With tls_dir it speaks https with a self-signed certificate for
127.0.0.1 made there by the openssl command (`ca` is its path, the CA a
client must trust). Setting `failing` to an HTTP status (503, say) makes it answer every
request with it, as a registry that is up but unwell does. Requests are
counted per id, so a test can tell a cached schema from a fetched one.

POST /subjects/{subject}/versions with {"schema": "<text>"} registers a
writer's schema, as clinicmig's Avro outputs do: the same text gets the
same id whatever the subject (a new text the next free id, kept in
`schemas` so GET answers it), the subject keeps its versions in order
(`subjects`: {subject: [id, ...]}, a text registered again under a subject
adds no version), and the answer is {"id": N}. `refuse` maps a subject to
(status, message) to answer as a registry that finds the schema
incompatible (409) or invalid (422) does. Each POST is kept in `posts` as
(subject, Content-Type).
"""

import base64
import http.server
import json
import os
import re
import ssl
import subprocess
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
    def __init__(self, schemas, user="registry", password="s3cret",
                 tls_dir=None):
        self.schemas = schemas          # {id: schema text}, read live
        self.tls = _certificate(tls_dir) if tls_dir else None
        self.ca = self.tls[0] if self.tls else None
        self.auth = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
        self.user_info = f"{user}:{password}"
        self.port = cmrun.free_port()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.requests = {}
        self.subjects = {}
        self.posts = []
        self.refuse = {}
        self._lock = threading.Lock()
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

            def do_GET(self):
                if self.headers.get("Authorization") != reg.auth:
                    return self._send(401, {"error_code": 401,
                                            "message": "Unauthorized"})
                if reg.failing is not None:
                    return self._send(reg.failing, {
                        "error_code": reg.failing, "message": "unavailable"})
                m = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                sid = int(m.group(1)) if m else None
                reg.requests[sid] = reg.requests.get(sid, 0) + 1
                if sid not in reg.schemas:
                    return self._send(404, {"error_code": 40403,
                                            "message": "Schema not found"})
                return self._send(200, {"schema": reg.schemas[sid]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Authorization") != reg.auth:
                    return self._send(401, {"error_code": 401,
                                            "message": "Unauthorized"})
                if reg.failing is not None:
                    return self._send(reg.failing, {
                        "error_code": reg.failing, "message": "unavailable"})
                m = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
                if not m:
                    return self._send(404, {"error_code": 404,
                                            "message": "HTTP 404 Not Found"})
                subject = urllib.parse.unquote(m.group(1))
                reg.posts.append((subject, self.headers.get("Content-Type")))
                if subject in reg.refuse:
                    status, message = reg.refuse[subject]
                    return self._send(status, {"error_code": status,
                                               "message": message})
                try:
                    text = json.loads(body)["schema"]
                    if not isinstance(text, str):
                        raise ValueError("schema is not a string")
                except (ValueError, KeyError, TypeError):
                    return self._send(422, {"error_code": 42201,
                                            "message": "Invalid schema"})
                return self._send(200, {"id": reg.register(subject, text)})

        return Handler

    def register(self, subject, text):
        """The id of @text, registered as a version of @subject."""
        with self._lock:
            sid = next((i for i, t in self.schemas.items() if t == text),
                       None)
            if sid is None:
                sid = max(self.schemas, default=0) + 1
                self.schemas[sid] = text
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def subject_of(self, sid):
        """The subjects that hold id @sid."""
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

    def worker_options(self):
        return ["--schema-registry-url", self.url,
                "-X", f"schema.registry.basic.auth.user.info={self.user_info}",
                "--schema-registry-timeout-ms", "1000"]
