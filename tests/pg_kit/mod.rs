//! PostgreSQL clusters for tests: a primary and streaming standbys in temp dirs on free
//! loopback ports, run as the `postgres` system user (`initdb` refuses root), stopped by PID
//! on drop (SIGCONT first, in case a test froze them, then an immediate shutdown).
//!
//! Fails loudly when PostgreSQL, `runuser` or the `postgres` user is missing.
#![allow(dead_code)]

use crate::kit::{free_port, require_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the `postgres` role in every test cluster.
pub const PASSWORD: &str = "lookout-test-pw";

/// Where the PostgreSQL server binaries are (`pg_config --bindir`, else the Debian path).
pub fn bindir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("pg_basebackup").exists())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found (pg_config --bindir, \
                 /usr/lib/postgresql/15/bin): apt-get install -y postgresql-15"
            )
        })
}

/// Runs a PostgreSQL binary as the `postgres` user with a deadline; panics with its output.
pub fn as_postgres(bin: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = bindir().join(bin);
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "runuser", "-u", "postgres", "--", "env"]);
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(&path).args(args);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run runuser (util-linux): {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?} as postgres failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chown_postgres(path: &Path) {
    crate::kit::sh("chown", &["postgres:postgres", path.to_str().unwrap()]);
}

/// How to build a primary.
#[derive(Clone, Debug)]
pub struct PrimaryOpts {
    /// `max_wal_size`.
    pub max_wal_size: String,
    /// `max_slot_wal_keep_size` (`-1` = unlimited).
    pub max_slot_wal_keep_size: String,
    /// `checkpoint_timeout`.
    pub checkpoint_timeout: String,
    /// Extra `postgresql.conf` lines.
    pub extra: Vec<String>,
    /// Files written into the data directory before the first start (name, contents), owned
    /// by `postgres` with mode 0600 (e.g. `server.key` for `ssl_key_file`).
    pub data_files: Vec<(String, String)>,
    /// Replaces `pg_hba.conf` (one line each) when set.
    pub hba: Option<Vec<String>>,
}

impl Default for PrimaryOpts {
    fn default() -> Self {
        PrimaryOpts {
            max_wal_size: "32MB".into(),
            max_slot_wal_keep_size: "-1".into(),
            checkpoint_timeout: "5min".into(),
            extra: Vec::new(),
            data_files: Vec::new(),
            hba: None,
        }
    }
}

/// One running cluster.
pub struct Cluster {
    /// `cluster_name` (and, for a standby, its `application_name`).
    pub name: String,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The data directory.
    pub data: PathBuf,
    /// The Unix socket directory.
    pub sock: PathBuf,
    /// The server log.
    pub log: PathBuf,
    tmp: tempfile::TempDir,
    stopped: bool,
}

fn new_tmp() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("lookout-pg")
        .tempdir()
        .expect("temp dir");
    chown_postgres(t.path());
    t
}

fn conf(port: u16, sock: &Path, name: &str) -> Vec<String> {
    vec![
        "listen_addresses = '127.0.0.1'".into(),
        format!("port = {port}"),
        format!("unix_socket_directories = '{}'", sock.display()),
        format!("cluster_name = '{name}'"),
        "fsync = off".into(),
        "shared_buffers = '16MB'".into(),
        "max_connections = 30".into(),
        "wal_receiver_status_interval = '1s'".into(),
        "wal_retrieve_retry_interval = '1s'".into(),
        "hot_standby = on".into(),
    ]
}

fn append(file: &Path, lines: &[String]) {
    let mut text = std::fs::read_to_string(file).unwrap_or_default();
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(file, text).unwrap();
}

impl Cluster {
    /// A primary; its data directory goes under `base` (e.g. a loop-mounted filesystem) or in
    /// its own temp dir.
    pub fn primary(name: &str, base: Option<&Path>, opts: &PrimaryOpts) -> Cluster {
        require_root("PostgreSQL test clusters (runuser)");
        let tmp = new_tmp();
        let data = match base {
            Some(b) => {
                let d = b.join("pgdata");
                std::fs::create_dir_all(&d).unwrap();
                chown_postgres(&d);
                d
            }
            None => tmp.path().join("data"),
        };
        let pwfile = tmp.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        chown_postgres(&pwfile);
        as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--no-sync",
                "-E",
                "UTF8",
            ],
            &[],
        );
        let port = free_port();
        let mut lines = conf(port, tmp.path(), name);
        lines.extend([
            "wal_level = replica".into(),
            "max_wal_senders = 5".into(),
            "max_replication_slots = 5".into(),
            format!("max_wal_size = '{}'", opts.max_wal_size),
            "min_wal_size = '32MB'".into(),
            "wal_keep_size = 0".into(),
            format!("max_slot_wal_keep_size = '{}'", opts.max_slot_wal_keep_size),
            format!("checkpoint_timeout = '{}'", opts.checkpoint_timeout),
        ]);
        lines.extend(opts.extra.iter().cloned());
        append(&data.join("postgresql.conf"), &lines);
        for (name, text) in &opts.data_files {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            chown_postgres(&path);
        }
        if let Some(hba) = &opts.hba {
            let path = data.join("pg_hba.conf");
            std::fs::write(&path, format!("{}\n", hba.join("\n"))).unwrap();
            chown_postgres(&path);
        }
        let c = Cluster {
            name: name.into(),
            port,
            log: tmp.path().join("server.log"),
            sock: tmp.path().to_path_buf(),
            data,
            tmp,
            stopped: true,
        };
        c.start_with_retry()
    }

    /// A streaming standby of `self` made with `pg_basebackup -R -C -S <slot>`, its
    /// `application_name` = `name`.
    pub fn standby(&self, name: &str, slot: &str) -> Cluster {
        let tmp = new_tmp();
        let data = tmp.path().join("data");
        as_postgres(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-C",
                "-S",
                slot,
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            &[("PGPASSWORD", PASSWORD)],
        );
        let port = free_port();
        append(&data.join("postgresql.conf"), &conf(port, tmp.path(), name));
        append(
            &data.join("postgresql.auto.conf"),
            &[format!(
                "primary_conninfo = 'host=127.0.0.1 port={} user=postgres password={PASSWORD} application_name={name}'",
                self.port
            )],
        );
        let c = Cluster {
            name: name.into(),
            port,
            log: tmp.path().join("server.log"),
            sock: tmp.path().to_path_buf(),
            data,
            tmp,
            stopped: true,
        };
        c.start_with_retry()
    }

    fn start_with_retry(mut self) -> Cluster {
        self.start();
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
            &[],
        );
        self.stopped = false;
    }

    /// Stops the server (fast shutdown) and waits.
    pub fn stop(&mut self) {
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
            &[],
        );
        self.stopped = true;
    }

    /// The postmaster's PID.
    pub fn pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .unwrap_or_else(|e| panic!("{}: no postmaster.pid: {e}", self.name));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: bad postmaster.pid", self.name))
    }

    /// The postmaster's children (backends, walsenders, walreceiver, …).
    pub fn children(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    /// Runs SQL through psql over the Unix socket; returns unaligned tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("timeout")
            .args(["30", "psql", "-X", "-h"])
            .arg(&self.sock)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run psql: {e} (apt-get install -y postgresql-client)")
            });
        assert!(
            out.status.success(),
            "{}: psql {sql:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The WAL receiver's PID on a standby (waits up to 30 s for it).
    pub fn walreceiver_pid(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.sql("SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'");
            if let Ok(pid) = out.trim().parse() {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no streaming WAL receiver within 30 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `pgbench` against this cluster in the background (killed on drop).
    pub fn pgbench(&self, args: &[&str]) -> Bg {
        // pgbench itself (not a `timeout` wrapper) so that drop kills the right PID; callers
        // bound it with -T.
        let child = Command::new("pgbench")
            .arg("-h")
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run pgbench: {e} (apt-get install -y postgresql-contrib)")
            });
        Bg(child)
    }

    /// Runs `pgbench -i` (scale `scale`) and waits.
    pub fn pgbench_init(&self, scale: u32) {
        let out = Command::new("timeout")
            .args(["300", "pgbench", "-h"])
            .arg(&self.sock)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-i",
                "-q",
                "-s",
            ])
            .arg(scale.to_string())
            .arg("postgres")
            .output()
            .expect("pgbench");
        assert!(
            out.status.success(),
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The children of a process, from /proc.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The command may contain spaces: the fields after the last ')' are fixed.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Sends a signal by PID (ignores a process that is already gone).
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return;
        };
        if !alive(pid) {
            return;
        }
        use rustix::process::Signal;
        let kids = children_of(pid);
        for k in &kids {
            signal(*k, Signal::CONT);
        }
        signal(pid, Signal::CONT);
        signal(pid, Signal::QUIT); // immediate shutdown
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            for k in kids {
                signal(k, Signal::KILL);
            }
            signal(pid, Signal::KILL);
        }
        let _ = &self.tmp;
    }
}

/// A background child killed on drop.
pub struct Bg(pub Child);

impl Bg {
    /// Stops it now.
    pub fn stop(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
