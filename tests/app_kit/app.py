"""The kit app: a small HTTP service that holds ONE PostgreSQL connection and never
reconnects once it breaks (as Synapse did on 2017-05-12).

    python app.py --port P --db-host H --db-port N --db-user U --db-name D \
                  --password-file F --pid-file F

POST /write  INSERT one row: 200 "ok"; once the connection broke: 503
             "database connection lost: ..." (for good: only a restart of the process helps)
GET  /health 200 "up" (the process is up; says nothing about the database)

It connects at start (and exits 1 if it cannot, so its supervisor tries again), writes its
pid to the pid file once it listens, and exits on SIGTERM.
"""

import argparse
import http.server
import os
import signal
import sys
import threading

import pg8000.native


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db-host", default="127.0.0.1")
    p.add_argument("--db-port", type=int, required=True)
    p.add_argument("--db-user", default="postgres")
    p.add_argument("--db-name", default="postgres")
    p.add_argument("--password-file", required=True)
    p.add_argument("--pid-file", required=True)
    a = p.parse_args()
    with open(a.password_file) as f:
        password = f.read().strip()
    try:
        conn = pg8000.native.Connection(
            a.db_user,
            host=a.db_host,
            port=a.db_port,
            database=a.db_name,
            password=password,
            timeout=5,
        )
        conn.run("CREATE TABLE IF NOT EXISTS kit_app_writes (id bigserial, at timestamptz DEFAULT now())")
    except Exception as e:  # noqa: BLE001 - any failure at start: exit, the supervisor retries
        print("cannot connect to the database: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)
    print("connected to %s:%d" % (a.db_host, a.db_port), flush=True)
    lock = threading.Lock()
    state = {"broken": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, code, text):
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self.answer(200, "up")
            else:
                self.answer(404, "not found")

        def do_POST(self):
            if self.path != "/write":
                self.answer(404, "not found")
                return
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            with lock:
                if state["broken"] is None:
                    try:
                        conn.run("INSERT INTO kit_app_writes DEFAULT VALUES")
                        self.answer(200, "ok")
                        return
                    except Exception as e:  # noqa: BLE001 - the connection is gone for good
                        state["broken"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                        print("database connection lost: %s" % state["broken"], flush=True)
                self.answer(503, "database connection lost: %s" % state["broken"])

        def log_message(self, fmt, *args):
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    tmp = a.pid_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, a.pid_file)
    print("listening on 127.0.0.1:%d, pid %d" % (a.port, os.getpid()), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
