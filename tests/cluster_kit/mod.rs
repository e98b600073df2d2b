//! Real etcd for the cluster tests (Debian `etcd-server`): one or three members in a temp dir
//! on free loopback ports, stopped by PID on drop; and a TCP proxy the test can cut, to take
//! one lookout node off etcd without touching anything else.
#![allow(dead_code)]

pub mod netlab;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A blocking HTTP client with `timeout` (rustls with lookout's one crypto provider).
pub fn blocking(timeout: Duration) -> reqwest::blocking::Client {
    lookout::http::install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// `n` free loopback ports, different from each other and from every port this process was
/// given before (the kernel hands a just-closed port out again readily, and services in a
/// namespace bind theirs only later).
pub fn distinct_ports(n: usize) -> Vec<u16> {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            out.push(port);
        }
        held.push(l);
    }
    out
}

/// The etcd binary (Debian's `etcd-server`; `scripts/test` installs it).
pub const ETCD: &str = "/usr/bin/etcd";

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// An etcd cluster of one or three members, killed by PID on drop.
pub struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    token: String,
    /// The network namespace the members run in (`None`: this one).
    ns: Option<String>,
    /// The address they listen on.
    host: String,
}

impl Etcd {
    /// Starts `n` members and waits (at most 20 s) until every one is healthy.
    pub fn start(n: usize) -> Etcd {
        Etcd::start_in(None, "127.0.0.1", n)
    }

    /// Starts `n` members inside network namespace `ns` (when given) on `host`.
    pub fn start_in(ns: Option<&str>, host: &str, n: usize) -> Etcd {
        assert!(
            std::path::Path::new(ETCD).exists(),
            "{ETCD} is missing: install Debian's etcd-server (scripts/test does)"
        );
        let ports = distinct_ports(2 * n);
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut e = Etcd {
            dir: tempfile::tempdir().unwrap(),
            members,
            token: format!("lookout-test-{:08x}", rand::random::<u32>()),
            ns: ns.map(str::to_string),
            host: host.to_string(),
        };
        for i in 0..n {
            e.spawn(i, "new");
        }
        e.wait_healthy();
        e
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, self.host, m.peer))
            .collect();
        let m = &self.members[i];
        let client = format!("http://{}:{}", self.host, m.client);
        let peer = format!("http://{}:{}", self.host, m.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let mut cmd = match &self.ns {
            Some(ns) => netlab::NetLab::command_in(ns, std::path::Path::new(ETCD)),
            None => Command::new(ETCD),
        };
        let child = cmd
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", state])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Waits until every running member answers `/health` with `"health":"true"`.
    pub fn wait_healthy(&self) {
        if let Some(ns) = &self.ns {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_some()
                    && std::panic::catch_unwind(|| netlab::wait_port_in(ns, &self.host, m.client))
                        .is_err()
                {
                    let log = std::fs::read_to_string(self.log(i)).unwrap_or_default();
                    panic!("etcd member {} in {ns} did not answer; log:\n{log}", m.name);
                }
            }
            return;
        }
        let client = blocking(Duration::from_secs(1));
        let deadline = Instant::now() + Duration::from_secs(20);
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            loop {
                let ok = client
                    .get(format!("http://127.0.0.1:{}/health", m.client))
                    .send()
                    .ok()
                    .and_then(|r| r.text().ok())
                    .is_some_and(|t| t.contains("\"health\":\"true\""));
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(self.log(i)).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    panic!(
                        "etcd member {} not healthy within 20s; log tail:\n{}",
                        m.name,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{}", self.host, self.members[i].client)
    }

    /// SIGKILLs member `i` (by PID) and waits for it.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data dir and waits until it is healthy.
    pub fn start_member(&mut self, i: usize) {
        if self.members[i].child.is_none() {
            self.spawn(i, "existing");
        }
        self.wait_healthy();
    }

    /// Stops every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }

    /// Starts every stopped member again and waits until all are healthy.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i, "existing");
            }
        }
        self.wait_healthy();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A TCP forwarder on a free loopback port to `target`; `cut()` drops every connection and
/// refuses new ones until `restore()`. Stopped on drop.
pub struct TcpProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (`http://HOST:PORT` or `HOST:PORT`).
    pub fn start(target: &str) -> TcpProxy {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = TcpProxy {
            port,
            cut: Arc::default(),
            stop: Arc::default(),
            open: Arc::default(),
        };
        let (cut, stop, open) = (p.cut.clone(), p.stop.clone(), p.open.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if cut.load(Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect_timeout(
                            &target.parse().unwrap(),
                            Duration::from_secs(1),
                        ) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        {
                            let mut o = open.lock().unwrap();
                            o.push(client.try_clone().unwrap());
                            o.push(server.try_clone().unwrap());
                        }
                        pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pump(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        p
    }

    /// The proxy's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
