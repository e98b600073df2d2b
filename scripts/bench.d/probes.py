#!/usr/bin/env python3
"""scripts/bench probes: lookout running N http probes every 10 s against a local server, beside
Prometheus + blackbox_exporter scraping the same N targets every 10 s, in the same run.
Reports CPU seconds and peak RSS of each side and the ratios.

Everything listens on 127.0.0.1 free ports in a temp dir and is stopped by PID."""
import http.server, os, shutil, signal, socket, socketserver, subprocess, sys, tempfile, threading, time

N = int(os.environ.get("BENCH_PROBES", "1000"))
DURATION = int(os.environ.get("BENCH_SECONDS", "120"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(procs, seconds):
    time.sleep(seconds)
    cpu = sum(cpu_seconds(p.pid) for p in procs)
    rss = sum(peak_rss(p.pid) for p in procs)
    return cpu, rss


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def need(binary, package):
    if shutil.which(binary) is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, timeout=600)


def main():
    need("prometheus", "prometheus")
    need("prometheus-blackbox-exporter", "prometheus-blackbox-exporter")
    lookout = os.path.join(ROOT, "target", "release", "lookout")
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True, timeout=1800)
    work = tempfile.mkdtemp(prefix="lookout-bench-")
    target_port = free_port()
    server = Server(("127.0.0.1", target_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{target_port}/t{i}" for i in range(N)]
    try:
        # lookout
        cfg = os.path.join(work, "lookout.toml")
        with open(cfg, "w") as f:
            for i, u in enumerate(urls):
                f.write(f'[[probe]]\nid = "t{i}"\nkind = "http"\nurl = "{u}"\ninterval = "10s"\ntimeout = "5s"\n\n')
        lk = subprocess.Popen([lookout, "--config", cfg, "--state-dir", os.path.join(work, "state"), "run",
                               "--listen", f"127.0.0.1:{free_port()}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "LOOKOUT_LOG": "warn"})
        try:
            lk_cpu, lk_rss = measure([lk], DURATION)
        finally:
            stop([lk])
        # Prometheus + blackbox_exporter
        bb_port, prom_port = free_port(), free_port()
        bb_cfg = os.path.join(work, "blackbox.yml")
        with open(bb_cfg, "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n")
        prom_cfg = os.path.join(work, "prometheus.yml")
        with open(prom_cfg, "w") as f:
            f.write("global:\n  scrape_interval: 10s\n  scrape_timeout: 5s\n  evaluation_interval: 10s\n")
            f.write("scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n")
            f.write("    static_configs:\n      - targets:\n")
            for u in urls:
                f.write(f"        - {u}\n")
            f.write("    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n")
            f.write("      - source_labels: [__param_target]\n        target_label: instance\n")
            f.write(f"      - target_label: __address__\n        replacement: 127.0.0.1:{bb_port}\n")
        bb = subprocess.Popen(["prometheus-blackbox-exporter", f"--config.file={bb_cfg}", f"--web.listen-address=127.0.0.1:{bb_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        prom = subprocess.Popen(["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            peer_cpu, peer_rss = measure([bb, prom], DURATION)
        finally:
            stop([bb, prom])
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    mib = 1024 * 1024
    print(f"\n{N} http probes every 10 s for {DURATION} s, same machine, same run\n")
    print("| side | CPU seconds | peak RSS |")
    print("|---|---|---|")
    print(f"| lookout | {lk_cpu:.2f} | {lk_rss / mib:.1f} MiB |")
    print(f"| Prometheus + blackbox_exporter | {peer_cpu:.2f} | {peer_rss / mib:.1f} MiB |")
    print(f"| ratio lookout / peer | {lk_cpu / peer_cpu if peer_cpu else float('nan'):.2f}× | {lk_rss / peer_rss if peer_rss else float('nan'):.2f}× |")
    print("\nTargets: lookout ≤ 0.5× the peer's CPU and ≤ 40 MB RSS.")


if __name__ == "__main__":
    sys.exit(main())
