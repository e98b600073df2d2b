use super::*;
use crate::model::Moment;
use std::path::Path;
use std::sync::Mutex;

const T: Thresholds = Thresholds {
    warning: 0.1,
    critical: 1.0,
};

type Answer = (String, Result<Reading, String>);

fn ok(name: &str, offset: f64) -> Answer {
    (name.into(), Ok(Reading { offset, rtt: 0.002 }))
}

fn failed(name: &str, why: &str) -> Answer {
    (name.into(), Err(why.into()))
}

#[test]
fn median_and_relative() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0]), Some(3.0));
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    assert_eq!(relative(540.0), "9m00s behind");
    assert_eq!(relative(-0.003), "3ms ahead");
    assert_eq!(relative(0.0001), "in step");
}

#[test]
fn summaries() {
    // (answers, status, message)
    let cases: Vec<(Vec<Answer>, Status, &str)> = vec![
        (
            vec![ok("a", 0.003)],
            Status::Ok,
            "clock is 3ms behind (per a, round trip 2ms)",
        ),
        (
            vec![ok("a", -540.0), ok("b", -540.05), ok("c", -539.99)],
            Status::Critical,
            "clock is 9m00s ahead (median of 3 servers: a 9m00s ahead, b 9m00s ahead, c 9m00s ahead); critical from 1s",
        ),
        (
            vec![ok("a", 0.25), ok("b", 0.2)],
            Status::Warning,
            "clock is 225ms behind (median of 2 servers: a 250ms behind, b 200ms behind); warning from 100ms",
        ),
        // One server far off: the median holds, the outlier is named.
        (
            vec![ok("a", 0.001), ok("b", 0.002), ok("bad", 4.0)],
            Status::Ok,
            "clock is 2ms behind (median of 3 servers: a 1ms behind, b 2ms behind, bad 4s behind); bad disagrees with the others by 4s",
        ),
        // Some silent: the others decide, the silent ones are named with the reason.
        (
            vec![ok("a", 0.0), failed("b", "no answer within 2s")],
            Status::Ok,
            "clock is in step (per a, round trip 2ms); b failed: no answer within 2s",
        ),
        (
            vec![
                failed("a", "no answer within 2s"),
                failed("b", "connection refused (no time server listens there)"),
            ],
            Status::Unknown,
            "no time server answered (a failed: no answer within 2s; b failed: connection refused (no time server listens there))",
        ),
    ];
    for (answers, status, message) in cases {
        let obs = summarize(&answers, T);
        assert_eq!(obs.message, message);
        assert_eq!(obs.status, status, "{message}");
    }
}

#[test]
fn samples_per_server_and_overall() {
    let obs = summarize(&[ok("a", -540.0), failed("b", "x")], T);
    let a = labels([("server", "a")]);
    assert_eq!(obs.sample(samples::OFFSET, &a), Some(-540.0));
    assert_eq!(obs.sample(samples::RTT, &a), Some(0.002));
    assert_eq!(
        obs.sample(samples::OFFSET, &labels([("server", "b")])),
        None
    );
    assert_eq!(
        obs.sample(samples::MEDIAN_OFFSET, &Labels::new()),
        Some(-540.0)
    );
    assert_eq!(
        obs.sample(samples::SERVERS_ANSWERING, &Labels::new()),
        Some(1.0)
    );
    let none = summarize(&[failed("b", "x")], T);
    assert_eq!(
        none.sample(samples::SERVERS_ANSWERING, &Labels::new()),
        Some(0.0)
    );
}

/// Both clocks, set by the test.
struct FakeClock(Mutex<Moment>);

impl FakeClock {
    fn advance(&self, mono: f64, wall: f64) {
        let mut m = self.0.lock().unwrap();
        m.mono += mono;
        m.wall += wall;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Moment {
        *self.0.lock().unwrap()
    }
}

fn probe(extra: ClockConfig) -> (ClockProbe, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock(Mutex::new(Moment {
        mono: 10.0,
        wall: 1_795_635_000.0,
    })));
    let config = ClockConfig {
        config_files: Some(extra.config_files.clone().unwrap_or_default()),
        ..extra
    };
    (ClockProbe::new(config, clock.clone()), clock)
}

#[tokio::test]
async fn without_servers_only_the_jump_detector_runs() {
    let (p, clock) = probe(ClockConfig::default());
    let first = p.run().await;
    assert_eq!(
        (first.status, first.message.as_str()),
        (Status::Ok, NO_SERVERS)
    );
    assert!(first.events.is_empty());
    clock.advance(60.0, 60.4);
    assert!(p.run().await.events.is_empty(), "0.4 s is within 2s");
    clock.advance(60.0, 602.0);
    let stepped = p.run().await;
    assert_eq!(
        stepped.status,
        Status::Ok,
        "no jump_severity: an event only"
    );
    assert_eq!(stepped.message, NO_SERVERS);
    assert_eq!(
        stepped.events,
        ["wall clock stepped +9m02s at 2026-11-25T19:41:02Z"]
    );
    clock.advance(60.0, 60.0);
    assert!(p.run().await.events.is_empty(), "reported once");
}

#[tokio::test]
async fn jump_severity_raises_only_the_run_that_notices() {
    let (p, clock) = probe(ClockConfig {
        jump_severity: Some(JumpSeverity::Critical),
        jump_threshold: Some(Dur::from_secs(30)),
        ..ClockConfig::default()
    });
    p.run().await;
    clock.advance(10.0, 45.0);
    let obs = p.run().await;
    assert_eq!(obs.status, Status::Critical);
    assert!(
        obs.message.starts_with("wall clock stepped +35s at ") && obs.message.ends_with(NO_SERVERS),
        "{}",
        obs.message
    );
    assert_eq!(obs.events.len(), 1);
    clock.advance(10.0, -20.0);
    let obs = p.run().await;
    assert_eq!(obs.events.len(), 0, "-30s is not beyond 30s");
    assert_eq!(obs.status, Status::Ok);
    clock.advance(10.0, -21.0);
    let obs = p.run().await;
    assert_eq!(obs.status, Status::Critical);
    assert!(obs.events[0].starts_with("wall clock stepped -31s at "));
}

#[tokio::test]
async fn default_servers_come_from_the_config_files() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the server is found, asked, and named as failing.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("ntp.conf");
    std::fs::write(&conf, format!("server 127.0.0.1:{port} iburst\n")).unwrap();
    let (p, _) = probe(ClockConfig {
        config_files: Some(vec![conf.display().to_string()]),
        server_timeout: Some(Dur(Duration::from_millis(300))),
        ..ClockConfig::default()
    });
    let obs = p.run().await;
    assert_eq!(obs.status, Status::Unknown);
    assert_eq!(
        obs.message,
        format!(
            "no time server answered (127.0.0.1:{port} failed: connection refused (no time server listens there))"
        )
    );
}

fn check(toml: &str) -> Result<(), String> {
    let text = format!("[[probe]]\nid = \"clock\"\nkind = \"clock\"\n{toml}\n");
    crate::config::parse_str(Path::new("t.toml"), &text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn validation() {
    let good = [
        "",
        "servers = [\"ntp.example.org\", \"192.0.2.1:123\", \"[2001:db8::1]:123\"]",
        "warning_offset = \"50ms\"\ncritical_offset = \"500ms\"\njump_severity = \"warning\"",
        "config_files = []\nservers = []",
    ];
    for g in good {
        check(g).unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let bad = [
        ("servers = [\"host:0\"]", "invalid port"),
        (
            "warning_offset = \"2s\"\ncritical_offset = \"1s\"",
            "critical_offset is smaller",
        ),
        (
            "jump_threshold = \"0s\"",
            "jump_threshold must be more than 0s",
        ),
        (
            "server_timeout = \"0s\"",
            "server_timeout must be more than 0s",
        ),
        ("config_files = [\"etc/ntp.conf\"]", "not an absolute path"),
        ("jump_severity = \"info\"", "unknown variant"),
        ("server = \"x\"", "server"),
    ];
    for (b, want) in bad {
        let e = check(b).expect_err(b);
        assert!(e.contains(want), "{b}: {e}");
    }
}
