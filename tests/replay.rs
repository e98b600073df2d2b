//! `lookout rules replay`: recorded samples through the daemon's own rule code.

mod kit;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn replay(csv: &str, extra: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(kit::lookout_bin())
        .args(["rules", "replay", "--kind", "disk", "--input", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(csv.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// 100 GiB disk, 5 GiB reserved, 50 GiB free for users, filling 1 GiB/h until full, then freed.
fn steady_fill_csv() -> String {
    let mut csv = String::from("timestamp,size_bytes,avail_bytes,free_bytes\n");
    let t0 = 1_494_000_000.0;
    for i in 0..=(56 * 60) {
        let t = t0 + i as f64 * 60.0;
        let h = i as f64 / 60.0;
        let avail = if h < 52.0 {
            (50.0 - h).max(0.0) * GIB
        } else {
            40.0 * GIB
        };
        let free = if avail > 0.0 {
            avail + 5.0 * GIB
        } else {
            (5.0 - (h - 50.0) * 0.5).max(0.5) * GIB
        };
        csv.push_str(&format!("{t},{},{avail},{free}\n", 100.0 * GIB));
    }
    csv
}

#[test]
fn replay_prints_each_transition_in_the_documented_shape() {
    let (code, stdout, stderr) = replay(&steady_fill_csv(), &["--json"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shape: Vec<(String, String, String)> = lines
        .iter()
        .map(|v| {
            (
                v["alert"].as_str().unwrap().into(),
                v["state"].as_str().unwrap().into(),
                v["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("disk_full".into(), "firing".into(), "warning".into()),
            ("disk_full".into(), "firing".into(), "critical".into()),
            ("disk_full".into(), "resolved".into(), "critical".into()),
        ],
        "{stdout}"
    );
    for v in &lines {
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{v}");
        for k in ["at", "alert", "state", "severity", "eta_seconds"] {
            assert!(keys.contains(&k), "{k} missing in {v}");
        }
    }
    let t0 = 1_494_000_000.0;
    let hours = |v: &Value| (v["at"].as_f64().unwrap() - t0) / 3600.0;
    // Warning when the ETA drops under 24 h (26 h in), plus the 5 minute `for`.
    assert!(
        (hours(&lines[0]) - 26.1).abs() < 0.3,
        "warning at {}h",
        hours(&lines[0])
    );
    let eta = lines[0]["eta_seconds"].as_f64().unwrap() / 3600.0;
    assert!((eta - 24.0).abs() < 0.3, "eta {eta}h");
    // Critical under 4 h (46 h in), well before full at 50 h.
    assert!(
        (hours(&lines[1]) - 46.1).abs() < 0.3,
        "critical at {}h",
        hours(&lines[1])
    );
    // Still critical while full (rate 0): it resolves only after space is freed at 52 h.
    assert!(hours(&lines[2]) > 52.0, "resolved at {}h", hours(&lines[2]));
}

#[test]
fn replay_uses_the_configured_probe_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = kit::write_config(
        dir.path(),
        "l.toml",
        "[[probe]]\nid = \"db\"\nkind = \"disk\"\nwarning_within = \"48h\"\ncritical_within = \"1h\"\nfor = \"0s\"\n",
    );
    let (code, stdout, stderr) = replay(
        &steady_fill_csv(),
        &["--json", "--config", cfg.to_str().unwrap(), "--probe", "db"],
    );
    assert_eq!(code, 0, "{stderr}");
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let at_h = (first["at"].as_f64().unwrap() - 1_494_000_000.0) / 3600.0;
    // With a 48 h horizon the warning comes as soon as the forecast may look that far ahead:
    // twice the history watched (ETA 50 h − t ≤ 2·t at t ≈ 16.7 h), not at 26 h as by default.
    assert!((at_h - 16.7).abs() < 0.3, "warned at {at_h}h");
}

#[test]
fn bad_csv_is_a_clear_error() {
    let (code, _, stderr) = replay("time,avail\n1,2\n", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("line 1: expected the header"), "{stderr}");
    let (code, _, stderr) = replay(
        "timestamp,size_bytes,avail_bytes,free_bytes\n1,2,x,4\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("line 2: field 3"), "{stderr}");
}
