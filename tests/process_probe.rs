//! The `process` probe against real processes the test starts: a copy of `sleep` under a name
//! no other process on this machine has, found by pid file and by name; killed ⇒ critical;
//! restarted ⇒ a restart event (also through the daemon, onto the timeline).

mod kit;

use kit::{Daemon, write_config};
use lookout::model::{Labels, Observation, Status};
use lookout::probe::Probe;
use lookout::probe::process::{ProcessConfig, ProcessProbe, samples};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A copy of `sleep` with a unique name (at most 15 characters, so it is the whole comm).
struct SleepBinary {
    _dir: tempfile::TempDir,
    path: PathBuf,
    name: String,
}

impl SleepBinary {
    /// `tag` tells apart the tests of this binary, which run at the same time.
    fn new(tag: char) -> SleepBinary {
        let dir = tempfile::tempdir().unwrap();
        let sleep = ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep (coreutils) is needed: apt-get install -y coreutils");
        let name = format!("lk{tag}{}", std::process::id() % 1_000_000_000);
        let path = dir.path().join(&name);
        std::fs::copy(sleep, &path).unwrap();
        SleepBinary {
            _dir: dir,
            path,
            name,
        }
    }

    fn start(&self) -> Sleeper {
        let child = Command::new(&self.path)
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.path.display()));
        Sleeper(child)
    }
}

/// A running sleeper, killed by pid and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(p: &ProcessProbe) -> Observation {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(p.run())
}

fn get(o: &Observation, name: &str) -> f64 {
    o.sample(name, &Labels::new())
        .unwrap_or_else(|| panic!("no sample {name} in {:?}", o.samples))
}

#[test]
fn by_pid_file_running_killed_stale_and_reused() {
    let bin = SleepBinary::new('a');
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleeper.pid");
    let sleeper = bin.start();
    let pid = sleeper.pid();
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
    let probe = ProcessProbe::new(
        ProcessConfig {
            pid_file: Some(pid_file.to_str().unwrap().into()),
            ..Default::default()
        },
        "/proc".into(),
    );
    let o = run(&probe);
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(
        o.message
            .starts_with(&format!("{} is running (pid {pid}, ", bin.name)),
        "{}",
        o.message
    );
    assert_eq!(get(&o, samples::COUNT), 1.0);
    assert!(
        get(&o, samples::RSS) > 0.0,
        "a running sleep has resident memory"
    );
    assert!(get(&o, samples::CPU) >= 0.0);

    sleeper.kill();
    let o = run(&probe);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        format!(
            "pid file {} names pid {pid}, which is not running (stale pid file)",
            pid_file.display()
        )
    );
    assert_eq!(get(&o, samples::COUNT), 0.0);

    // The pid now belongs to another program (here: the test itself).
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let probe = ProcessProbe::new(
        ProcessConfig {
            pid_file: Some(pid_file.to_str().unwrap().into()),
            name: Some(bin.name.clone()),
            ..Default::default()
        },
        "/proc".into(),
    );
    let o = run(&probe);
    assert_eq!(o.status, Status::Critical);
    assert!(
        o.message.ends_with(&format!(
            "not {} (stale pid file; the pid was reused)",
            bin.name
        )),
        "{}",
        o.message
    );

    std::fs::remove_file(&pid_file).unwrap();
    let o = run(&probe);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        format!(
            "pid file {} does not exist: the process is not running",
            pid_file.display()
        )
    );

    std::fs::write(&pid_file, "not a pid").unwrap();
    let o = run(&probe);
    assert_eq!(o.status, Status::Unknown);
    assert!(o.message.contains("does not hold a pid"), "{}", o.message);
}

#[test]
fn by_name_count_kill_and_restart() {
    let bin = SleepBinary::new('b');
    let probe = ProcessProbe::new(
        ProcessConfig {
            name: Some(bin.name.clone()),
            ..Default::default()
        },
        "/proc".into(),
    );
    let o = run(&probe);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        format!("{0} is not running: no process named {0}", bin.name)
    );

    let first = bin.start();
    let a = first.pid();
    let o = run(&probe);
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(o.events.is_empty());

    // Restarted between two runs: an event naming both pids.
    first.kill();
    let second = bin.start();
    let b = second.pid();
    let o = run(&probe);
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert_eq!(
        o.events,
        vec![format!("{} restarted (pid {a} → {b})", bin.name)]
    );
    assert_eq!(get(&o, samples::RESTARTS), 1.0);

    // Killed: critical.
    second.kill();
    let o = run(&probe);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(get(&o, samples::COUNT), 0.0);

    // Counts against min_count / max_count and a command-line filter.
    let s1 = bin.start();
    let s2 = bin.start();
    let counted = |min: Option<u32>, max: Option<u32>, contains: Option<&str>| {
        run(&ProcessProbe::new(
            ProcessConfig {
                name: Some(bin.name.clone()),
                min_count: min,
                max_count: max,
                cmdline_contains: contains.map(String::from),
                ..Default::default()
            },
            "/proc".into(),
        ))
    };
    let o = counted(Some(2), Some(2), None);
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert_eq!(get(&o, samples::COUNT), 2.0);
    assert_eq!(counted(Some(3), None, None).status, Status::Critical);
    assert_eq!(counted(None, Some(1), None).status, Status::Warning);
    assert_eq!(counted(None, None, Some("1000")).status, Status::Ok);
    let o = counted(None, None, Some("--no-such-flag"));
    assert_eq!(o.status, Status::Critical);
    assert!(
        o.message
            .contains("with \"--no-such-flag\" in its command line"),
        "{}",
        o.message
    );
    drop((s1, s2));
}

#[test]
fn a_restart_reaches_the_timeline_through_the_daemon() {
    let bin = SleepBinary::new('c');
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            "[[probe]]\nid = \"sleeper\"\nkind = \"process\"\nname = \"{}\"\ninterval = \"1s\"\n",
            bin.name
        ),
    );
    let first = bin.start();
    let a = first.pid();
    let daemon = Daemon::start(&config, &work.path().join("state"), work.path());
    std::thread::sleep(Duration::from_millis(2500)); // two runs see the first process
    first.kill();
    let second = bin.start();
    let want = format!(
        "sleeper: {} restarted (pid {a} → {})",
        bin.name,
        second.pid()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let timeline = daemon.get("/api/v1/timeline?since=1h");
        if timeline.to_string().contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} on the timeline within 15 s: {timeline}\nlog:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.terminate(Duration::from_secs(5));
}
