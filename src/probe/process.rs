//! The `process` probe: is a process running (by pid file or by name, via `/proc`), how many,
//! how much memory and CPU they use, and whether they restarted since the last run.

use super::{Built, Probe};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Labels, Observation, Sample, Status, format_bytes};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Sample names.
pub mod samples {
    /// Matching processes running.
    pub const COUNT: &str = "process.count";
    /// Resident memory of all of them, bytes.
    pub const RSS: &str = "process.rss_bytes";
    /// CPU time (user + system) of all of them, seconds.
    pub const CPU: &str = "process.cpu_seconds";
    /// Restarts seen since lookout started.
    pub const RESTARTS: &str = "process.restarts_total";
}

/// `[[probe]] kind = "process"`: a process found by pid file or by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// A file holding the pid of the process, e.g. `/run/synapse.pid`. A missing file or a pid
    /// that is not running is critical. Default: none (then `name` is required).
    pub pid_file: Option<String>,
    /// The process name: matches `/proc/PID/comm` (the kernel's name, at most 15 characters)
    /// or the base name of `argv[0]`. With `pid_file`, the pid's process must have this name
    /// too (catches a pid reused by another program). Default: none.
    pub name: Option<String>,
    /// Only count processes whose command line (arguments joined by spaces) contains this
    /// text, e.g. `"homeserver.yaml"`. Default: none.
    pub cmdline_contains: Option<String>,
    /// Fewer matching processes than this is critical. Default 1. Not with `pid_file`.
    pub min_count: Option<u32>,
    /// More matching processes than this is a warning. Default: no limit. Not with `pid_file`.
    pub max_count: Option<u32>,
}

impl KindConfig for ProcessConfig {
    const NAME: &'static str = "process";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 5)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        let mut err = |m: String, hint: Option<&str>| {
            errors.push(
                Some(span.clone()),
                Some(component),
                m,
                hint.map(String::from),
            )
        };
        if self.pid_file.is_none() && self.name.is_none() {
            err(
                "neither pid_file nor name is set: nothing says which process to watch".into(),
                Some(r#"e.g. name = "synapse" or pid_file = "/run/synapse.pid""#),
            );
        }
        if let Some(p) = &self.pid_file
            && !p.starts_with('/')
        {
            err(format!("pid_file {p:?} is not an absolute path"), None);
        }
        if let Some(n) = &self.name
            && (n.is_empty() || n.contains('/'))
        {
            err(
                format!("name {n:?} must be a program name, not empty and without '/'"),
                None,
            );
        }
        if self.pid_file.is_some() && (self.min_count.is_some() || self.max_count.is_some()) {
            err(
                "min_count and max_count count processes found by name; a pid file names one"
                    .into(),
                Some("remove them, or use name instead of pid_file"),
            );
        }
        if let (Some(min), Some(max)) = (self.min_count, self.max_count)
            && min > max
        {
            err(
                format!("min_count {min} is larger than max_count {max}"),
                None,
            );
        }
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: Arc::new(ProcessProbe::new(self.clone(), PathBuf::from("/proc"))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// One process as `/proc` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: i32,
    /// `/proc/PID/comm` (from `stat`).
    pub comm: String,
    /// Its arguments.
    pub argv: Vec<String>,
    /// Start time after boot, in clock ticks (`stat` field 22).
    pub starttime: u64,
    /// User + system CPU time, in clock ticks (`stat` fields 14 and 15).
    pub cpu_ticks: u64,
    /// Resident memory in bytes (`VmRSS` of `status`).
    pub rss_bytes: u64,
}

/// The fields of `/proc/PID/stat` this probe uses: comm, utime + stime, starttime. The comm
/// is in parentheses and may itself hold spaces and parentheses, so the fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<(String, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields from 3 (state) on.
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((comm, field(14)? + field(15)?, field(22)?))
}

/// `VmRSS` of `/proc/PID/status`, in bytes (kernel threads have none: 0).
pub fn parse_status_rss(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Reads one process; `None` if it is gone (or vanished half-way).
pub fn read_proc(proc_root: &Path, pid: i32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, cpu_ticks, starttime) = parse_stat(&stat)?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let rss_bytes = std::fs::read_to_string(dir.join("status"))
        .map(|s| parse_status_rss(&s))
        .unwrap_or(0);
    Some(ProcInfo {
        pid,
        comm,
        argv,
        starttime,
        cpu_ticks,
        rss_bytes,
    })
}

/// Whether a process is the one named: its comm or the base name of its `argv[0]`.
pub fn name_matches(p: &ProcInfo, name: &str) -> bool {
    let argv0 = p.argv.first().map(String::as_str).unwrap_or("");
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    // comm is cut to 15 bytes by the kernel.
    p.comm == name || base == name || (p.comm.len() == 15 && name.starts_with(p.comm.as_str()))
}

/// The processes a configuration matches right now (the `signal` action finds its targets
/// with it); `Err` says why none can be (a missing or stale pid file, an unreadable `/proc`).
pub fn matching(config: &ProcessConfig, proc_root: &Path) -> Result<Vec<ProcInfo>, String> {
    match ProcessProbe::find(config, proc_root) {
        Found::Procs(p) => Ok(p),
        Found::Missing(why) | Found::Error(why) => Err(why),
    }
}

/// Clock ticks per second (`AT_CLKTCK` from `/proc/self/auxv`; 100 when unreadable).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        const AT_CLKTCK: usize = 17;
        const W: usize = std::mem::size_of::<usize>();
        let Ok(raw) = std::fs::read("/proc/self/auxv") else {
            return 100.0;
        };
        raw.chunks_exact(2 * W)
            .find_map(|pair| {
                let key = usize::from_ne_bytes(pair[..W].try_into().ok()?);
                let val = usize::from_ne_bytes(pair[W..].try_into().ok()?);
                (key == AT_CLKTCK && val > 0).then_some(val as f64)
            })
            .unwrap_or(100.0)
    })
}

/// What one run found.
enum Found {
    /// These processes (maybe none).
    Procs(Vec<ProcInfo>),
    /// The process cannot be there: the words say why (critical).
    Missing(String),
    /// Could not tell (unknown).
    Error(String),
}

/// What the probe remembers between runs.
#[derive(Default)]
struct Memory {
    /// (pid, start time) of the processes seen last time any were running.
    last: Option<BTreeSet<(i32, u64)>>,
    restarts: u64,
}

/// The probe.
pub struct ProcessProbe {
    config: ProcessConfig,
    proc_root: PathBuf,
    memory: Mutex<Memory>,
}

impl ProcessProbe {
    /// A probe for this configuration, reading processes under `proc_root` (`/proc`).
    pub fn new(config: ProcessConfig, proc_root: PathBuf) -> ProcessProbe {
        ProcessProbe {
            config,
            proc_root,
            memory: Mutex::new(Memory::default()),
        }
    }

    fn find(config: &ProcessConfig, root: &Path) -> Found {
        if let Some(file) = &config.pid_file {
            return Self::by_pid_file(config, root, file);
        }
        let name = config.name.as_deref().unwrap_or("");
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) => return Found::Error(format!("cannot list {}: {e}", root.display())),
        };
        let me = std::process::id() as i32;
        let mut procs: Vec<ProcInfo> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid != me)
            .filter_map(|pid| read_proc(root, pid))
            .filter(|p| name_matches(p, name) && Self::cmdline_ok(config, p))
            .collect();
        procs.sort_by_key(|p| p.pid);
        Found::Procs(procs)
    }

    fn cmdline_ok(config: &ProcessConfig, p: &ProcInfo) -> bool {
        config
            .cmdline_contains
            .as_deref()
            .is_none_or(|want| p.argv.join(" ").contains(want))
    }

    fn by_pid_file(config: &ProcessConfig, root: &Path, file: &str) -> Found {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Found::Missing(format!(
                    "pid file {file} does not exist: the process is not running"
                ));
            }
            Err(e) => return Found::Error(format!("cannot read pid file {file}: {e}")),
        };
        let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 0) else {
            let shown: String = text.trim().chars().take(40).collect();
            return Found::Error(format!("pid file {file} does not hold a pid: {shown:?}"));
        };
        let Some(p) = read_proc(root, pid) else {
            return Found::Missing(format!(
                "pid file {file} names pid {pid}, which is not running (stale pid file)"
            ));
        };
        if let Some(name) = &config.name
            && !name_matches(&p, name)
        {
            return Found::Missing(format!(
                "pid file {file} names pid {pid}, which is {:?}, not {name} (stale pid file; the pid was reused)",
                p.comm
            ));
        }
        if !Self::cmdline_ok(config, &p) {
            return Found::Missing(format!(
                "pid file {file} names pid {pid} ({}), whose command line lacks {:?}",
                p.comm,
                config.cmdline_contains.as_deref().unwrap_or("")
            ));
        }
        Found::Procs(vec![p])
    }

    /// Turns what was found into an observation, remembering the processes for next time.
    fn observe(&self, found: Found) -> Observation {
        let c = &self.config;
        let mut mem = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let none = Labels::new();
        let procs = match found {
            Found::Error(m) => return Observation::new(Status::Unknown, m),
            Found::Missing(m) => {
                let mut o = Observation::new(Status::Critical, m);
                o.samples.push(Sample::new(samples::COUNT, &none, 0.0));
                o.samples
                    .push(Sample::new(samples::RESTARTS, &none, mem.restarts as f64));
                return o;
            }
            Found::Procs(p) => p,
        };
        let who = c
            .name
            .clone()
            .or_else(|| procs.first().map(|p| p.comm.clone()))
            .unwrap_or_else(|| "the process".into());
        let pids = |ps: &[ProcInfo]| {
            let mut s: Vec<String> = ps.iter().take(10).map(|p| p.pid.to_string()).collect();
            if ps.len() > 10 {
                s.push("…".into());
            }
            s.join(", ")
        };
        let mut obs = Observation::new(Status::Ok, String::new());
        // Restarts: processes gone and others come since the last time any were seen.
        let now: BTreeSet<(i32, u64)> = procs.iter().map(|p| (p.pid, p.starttime)).collect();
        if !now.is_empty() {
            if let Some(last) = &mem.last {
                let gone: Vec<i32> = last.difference(&now).map(|(p, _)| *p).collect();
                let came: Vec<i32> = now.difference(last).map(|(p, _)| *p).collect();
                let n = gone.len().min(came.len());
                if n > 0 {
                    mem.restarts += n as u64;
                    let list =
                        |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
                    let word = if gone.len() == 1 && came.len() == 1 {
                        "pid"
                    } else {
                        "pids"
                    };
                    obs.events.push(format!(
                        "{who} restarted ({word} {} → {})",
                        list(&gone),
                        list(&came)
                    ));
                }
            }
            mem.last = Some(now);
        }
        let count = procs.len() as u32;
        let rss: u64 = procs.iter().map(|p| p.rss_bytes).sum();
        let cpu: f64 = procs.iter().map(|p| p.cpu_ticks as f64).sum::<f64>() / clock_ticks();
        let min = if c.pid_file.is_some() {
            1
        } else {
            c.min_count.unwrap_or(1)
        };
        let filter = c
            .cmdline_contains
            .as_deref()
            .map(|s| format!(" with {s:?} in its command line"))
            .unwrap_or_default();
        obs.message = if count == 0 {
            obs.status = Status::Critical;
            format!("{who} is not running: no process named {who}{filter}")
        } else if count < min {
            obs.status = Status::Critical;
            format!(
                "only {count} {who} processes running, expected at least {min} (pids {})",
                pids(&procs)
            )
        } else if let Some(max) = c.max_count.filter(|m| count > *m) {
            obs.status = Status::Warning;
            format!(
                "{count} {who} processes running, expected at most {max} (pids {})",
                pids(&procs)
            )
        } else if count == 1 {
            format!(
                "{who} is running (pid {}, {} resident)",
                procs[0].pid,
                format_bytes(rss as f64)
            )
        } else {
            format!(
                "{count} {who} processes running (pids {}; {} resident)",
                pids(&procs),
                format_bytes(rss as f64)
            )
        };
        obs.samples = vec![
            Sample::new(samples::COUNT, &none, count as f64),
            Sample::new(samples::RSS, &none, rss as f64),
            Sample::new(samples::CPU, &none, cpu),
            Sample::new(samples::RESTARTS, &none, mem.restarts as f64),
        ];
        obs
    }
}

#[async_trait]
impl Probe for ProcessProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let (config, root) = (self.config.clone(), self.proc_root.clone());
        // /proc reads are blocking syscalls: keep them off the runtime.
        let found = tokio::task::spawn_blocking(move || Self::find(&config, &root))
            .await
            .unwrap_or_else(|e| Found::Error(format!("process probe failed: {e}")));
        let mut obs = self.observe(found);
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_paren() {
        // Real /proc/PID/stat lines (a plain sleep, and a comm with spaces and parentheses).
        let cases = [
            (
                "4242 (sleep) S 4200 4242 4200 0 -1 4194304 91 0 0 0 3 5 0 0 20 0 1 0 987654 5500928 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0",
                ("sleep", 8, 987654),
            ),
            (
                "77 (a b) (c)) R 1 77 77 0 -1 4194560 100 0 0 0 120 30 0 0 20 0 4 0 5000 1000 10 18446744073709551615",
                ("a b) (c)", 150, 5000),
            ),
        ];
        for (text, (comm, cpu, start)) in cases {
            assert_eq!(
                parse_stat(text),
                Some((comm.to_string(), cpu, start)),
                "{text}"
            );
        }
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_from_status() {
        assert_eq!(
            parse_status_rss("Name:\tsleep\nVmRSS:\t     896 kB\nThreads:\t1\n"),
            896 * 1024
        );
        assert_eq!(parse_status_rss("Name:\tkthreadd\n"), 0);
    }

    #[test]
    fn names_match_comm_argv0_and_truncated_comm() {
        let p = |comm: &str, argv0: &str| ProcInfo {
            pid: 1,
            comm: comm.into(),
            argv: vec![argv0.into()],
            starttime: 0,
            cpu_ticks: 0,
            rss_bytes: 0,
        };
        assert!(name_matches(&p("sleep", "/usr/bin/sleep"), "sleep"));
        assert!(name_matches(
            &p("python3", "/opt/venv/bin/synapse"),
            "synapse"
        ));
        assert!(name_matches(
            &p("synapse_homeser", "x"),
            "synapse_homeserver"
        ));
        assert!(!name_matches(&p("sleepy", "/bin/sleepy"), "sleep"));
    }

    fn info(pid: i32, start: u64) -> ProcInfo {
        ProcInfo {
            pid,
            comm: "synapse".into(),
            argv: vec!["synapse".into()],
            starttime: start,
            cpu_ticks: 100,
            rss_bytes: 1 << 20,
        }
    }

    #[test]
    fn restarts_are_seen_across_runs_and_a_down_time() {
        let p = ProcessProbe::new(
            ProcessConfig {
                name: Some("synapse".into()),
                ..Default::default()
            },
            PathBuf::from("/nonexistent"),
        );
        let o = p.observe(Found::Procs(vec![info(123, 10)]));
        assert_eq!(o.status, Status::Ok);
        assert!(o.events.is_empty());
        assert_eq!(o.message, "synapse is running (pid 123, 1.0 MiB resident)");
        let o = p.observe(Found::Procs(vec![info(456, 20)]));
        assert_eq!(o.events, vec!["synapse restarted (pid 123 → 456)"]);
        assert_eq!(o.sample(samples::RESTARTS, &Labels::new()), Some(1.0));
        // Same pid reused with a new start time is a restart too.
        let o = p.observe(Found::Procs(vec![info(456, 30)]));
        assert_eq!(o.events, vec!["synapse restarted (pid 456 → 456)"]);
        // Down, then up again: a restart once it is back.
        let o = p.observe(Found::Procs(vec![]));
        assert_eq!(o.status, Status::Critical);
        assert_eq!(
            o.message,
            "synapse is not running: no process named synapse"
        );
        let o = p.observe(Found::Procs(vec![info(789, 40)]));
        assert_eq!(o.events, vec!["synapse restarted (pid 456 → 789)"]);
        assert_eq!(o.sample(samples::RESTARTS, &Labels::new()), Some(3.0));
        // A worker added is not a restart.
        let o = p.observe(Found::Procs(vec![info(789, 40), info(800, 50)]));
        assert!(o.events.is_empty());
        assert_eq!(o.sample(samples::COUNT, &Labels::new()), Some(2.0));
    }

    #[test]
    fn counts_outside_the_limits() {
        let p = ProcessProbe::new(
            ProcessConfig {
                name: Some("synapse".into()),
                min_count: Some(2),
                max_count: Some(3),
                ..Default::default()
            },
            PathBuf::from("/nonexistent"),
        );
        let o = p.observe(Found::Procs(vec![info(1, 1)]));
        assert_eq!(o.status, Status::Critical);
        assert_eq!(
            o.message,
            "only 1 synapse processes running, expected at least 2 (pids 1)"
        );
        let o = p.observe(Found::Procs((1..=4).map(|i| info(i, 1)).collect()));
        assert_eq!(o.status, Status::Warning);
        assert_eq!(
            o.message,
            "4 synapse processes running, expected at most 3 (pids 1, 2, 3, 4)"
        );
    }

    #[test]
    fn clock_ticks_are_read() {
        assert!(clock_ticks() >= 1.0);
    }
}
