//! Fifty `http` probes stalled against a server that never answers do not delay an unrelated
//! probe: the real daemon keeps a fast `tcp` probe on its 1 s cadence (no gap over 2 s).

mod http_tcp_servers;
mod kit;

use http_tcp_servers::{Server, hold};
use kit::{Daemon, write_config};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[test]
fn fifty_stalled_http_probes_do_not_delay_an_unrelated_probe() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Accepts, reads the request, never answers; holds every connection open.
    let stall = rt.block_on(Server::start(|mut s, _| {
        Box::pin(async move { hold(&mut s).await })
    }));
    // Accepts and closes: the target of the unrelated probe.
    let fast = rt.block_on(Server::start(|s, _| Box::pin(async move { drop(s) })));

    let work = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for i in 0..50 {
        // The timeout may not exceed the interval, so 3 s each: every stalled probe holds a
        // run slot all the time.
        writeln!(
            config,
            "[[probe]]\nid = \"stalled-{i:02}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{}/never\"\ninterval = \"3s\"\ntimeout = \"3s\"\n",
            stall.port
        )
        .unwrap();
    }
    writeln!(
        config,
        "[[probe]]\nid = \"fast\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\ninterval = \"1s\"\ntimeout = \"1s\"",
        fast.port
    )
    .unwrap();
    let path = write_config(work.path(), "lookout.toml", &config);
    let daemon = Daemon::start(&path, &work.path().join("state"), work.path());

    // Let the first stalled runs start (their first runs are spread over up to 0.3 s).
    std::thread::sleep(Duration::from_secs(2));
    let mut runs: Vec<f64> = Vec::new();
    let mut stalled_seen = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let status = daemon.get("/api/v1/status");
        let probes = status["probes"].as_array().expect("probes list");
        for p in probes {
            if p["id"] == "fast" {
                let at = p["at"].as_f64().expect("at");
                if runs.last() != Some(&at) {
                    runs.push(at);
                }
                assert_eq!(
                    p["observation"]["status"], "ok",
                    "the fast probe failed: {p}"
                );
            }
        }
        stalled_seen = probes
            .iter()
            .filter(|p| {
                p["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("stalled-"))
                    && p["observation"]["status"] == "unknown"
                    && p["observation"]["message"].as_str().is_some_and(|m| {
                        m.contains("timed out after") && m.contains("(no response headers)")
                    })
            })
            .count();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        stalled_seen,
        50,
        "all 50 stalled probes should report a timeout; log:\n{}",
        daemon.log_text()
    );
    let gaps: Vec<f64> = runs.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("fast probe gaps: {gaps:.2?}");
    assert!(
        runs.len() >= 8,
        "only {} fast runs in 10 s: {gaps:.2?}",
        runs.len()
    );
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    assert!(
        worst <= 2.0,
        "the fast probe was delayed: a gap of {worst:.2}s (cadence 1s); gaps {gaps:.2?}"
    );
    drop(daemon);
    drop(stall);
    drop(fast);
}
