//! The dhcp_lease probe through the real binary (`lookout check --once --json`), on lease files
//! of each client generated from templates with times relative to now, so they never go stale.

mod kit;

use kit::{lookout_bin, write_config, write_file};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const H: i64 = 3600;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `W YYYY/MM/DD HH:MM:SS` (UTC) as dhclient writes it.
fn dhclient_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{} {y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        (days + 4).rem_euclid(7),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A dhclient lease block; times are offsets from now (30 s margins keep the minutes stable
/// while the probe runs).
fn dhclient(iface: &str, addr: &str, renew: i64, expire: i64) -> String {
    let n = now();
    format!(
        "lease {{\n  interface \"{iface}\";\n  fixed-address {addr};\n  option dhcp-lease-time 43200;\n  renew {};\n  rebind {};\n  expire {};\n}}\n",
        dhclient_time(n + renew),
        dhclient_time(n + (renew + expire) / 2),
        dhclient_time(n + expire)
    )
}

/// Runs `lookout check --once --json` with one dhcp_lease probe reading `dir`.
fn check(work: &Path, dir: &Path) -> (i32, Value) {
    check_with(work, &format!("paths = [\"{}\"]\n", dir.display()))
}

/// Runs `lookout check --once --json` with one dhcp_lease probe with these options.
fn check_with(work: &Path, options: &str) -> (i32, Value) {
    let config = write_config(
        work,
        "lookout.toml",
        &format!("[[probe]]\nid = \"leases\"\nkind = \"dhcp_lease\"\n{options}"),
    );
    let out = Command::new("timeout")
        .arg("30")
        .arg(lookout_bin())
        .arg("--config")
        .arg(&config)
        .args(["check", "--once", "--json"])
        .output()
        .expect("run lookout check");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), rows[0].clone())
}

#[test]
fn lease_files_of_each_client_through_the_real_binary() {
    // (files, exit code, status, message)
    type Case<'a> = (Vec<(&'a str, String)>, i32, &'a str, String);
    let cases: Vec<Case> = vec![
        // Issue 9 item 17: a directory named in `paths` that holds no lease is not "ok".
        (
            vec![],
            3,
            "unknown",
            "no DHCP leases found in {dir} (named in paths)".into(),
        ),
        (
            vec![
                ("dhclient.eth0.leases", dhclient("eth0", "192.168.1.10", 6 * H + 30, 12 * H + 30)),
                (
                    "internal-3f7c0b7e-3c7e-4e55-9a49-0a1b2c3d4e5f-wlan0.lease",
                    "# This is private data. Do not parse.\nADDRESS=10.0.3.5\n".into(),
                ),
            ],
            0,
            "ok",
            "eth0 uses DHCP (lease 192.168.1.10, renews in 6h00m, expires in 12h00m); \
             wlan0 uses DHCP (lease 10.0.3.5, no lease times recorded by NetworkManager's internal client)"
                .into(),
        ),
        (
            vec![("dhclient.eth1.leases", dhclient("eth1", "192.168.7.3", -2 * H - 30, 5 * H + 30))],
            1,
            "warning",
            "eth1: DHCP lease 192.168.7.3 is past its renewal time by 2h00m and not renewed; expires in 5h00m"
                .into(),
        ),
        (
            vec![("dhclient.eth0.leases", dhclient("eth0", "192.168.1.10", -8 * H - 30, -2 * H - 30))],
            2,
            "critical",
            "eth0: DHCP lease 192.168.1.10 expired 2h00m ago and was not renewed: \
             the address and the routes that came with it may be gone"
                .into(),
        ),
    ];
    for (i, (files, code, status, message)) in cases.into_iter().enumerate() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("leases-dir");
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in &files {
            write_file(&dir, name, text);
        }
        let (got_code, row) = check(work.path(), &dir);
        assert_eq!(row["kind"], "dhcp_lease", "case {i}: {row}");
        let got = row["message"].as_str().unwrap_or_default();
        let message = message.replace("{dir}", &dir.display().to_string());
        // Every span above is over an hour with a 30 s margin, so the text is stable while
        // the probe runs.
        assert_eq!(
            (row["status"].as_str().unwrap_or_default(), got),
            (status, message.as_str()),
            "case {i}"
        );
        assert_eq!(got_code, code, "case {i}: exit code");
    }
}

#[test]
fn networkd_lease_counts_from_the_time_the_file_was_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("leases");
    std::fs::create_dir(&dir).unwrap();
    // networkd names lease files by interface index; 1 is always the loopback device.
    let f = write_file(
        &dir,
        "1",
        "# This is private data. Do not parse.\nADDRESS=10.0.2.15\nT1=12h\nT2=21h\nLIFETIME=1d\n",
    );
    // Written an hour ago.
    let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let (code, row) = check(work.path(), &dir);
    assert_eq!(code, 0, "{row}");
    let msg = row["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("lo uses DHCP (lease 10.0.2.15, renews in 10h59m")
            || msg.starts_with("lo uses DHCP (lease 10.0.2.15, renews in 11h00m"),
        "{msg}"
    );
    let samples = row["samples"].as_array().unwrap();
    let expires = samples
        .iter()
        .find(|s| s["name"] == "dhcp.expires_in_seconds" && s["labels"]["interface"] == "lo")
        .unwrap_or_else(|| panic!("no expiry sample: {row}"))["value"]
        .as_f64()
        .unwrap();
    assert!(
        (expires - 23.0 * 3600.0).abs() < 10.0,
        "expires in {expires} s"
    );
}

#[test]
fn a_named_path_or_interface_without_a_lease_reads_unknown_and_says_where_it_looked() {
    // Issue 9 item 17: a typo in `paths` read "ok: no DHCP leases found" and silently
    // disabled the check.
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("dhcp");
    std::fs::create_dir(&dir).unwrap();
    write_file(
        &dir,
        "dhclient.eth0.leases",
        &dhclient("eth0", "192.168.1.10", 6 * H + 30, 12 * H + 30),
    );
    let typo = work.path().join("dhpc");
    let (code, row) = check(work.path(), &typo);
    assert_eq!(
        (code, row["status"].as_str(), row["message"].as_str()),
        (
            3,
            Some("unknown"),
            Some(format!("{} (named in paths) does not exist", typo.display()).as_str())
        )
    );

    // One good path and one typo: the typo first (it is what is wrong), then the lease.
    let (code, row) = check_with(
        work.path(),
        &format!("paths = [\"{}\", \"{}\"]\n", dir.display(), typo.display()),
    );
    assert_eq!(row["status"], "unknown", "{row}");
    assert_eq!(
        row["message"].as_str().unwrap_or_default(),
        format!(
            "{} (named in paths) does not exist; eth0 uses DHCP (lease 192.168.1.10, renews in 6h00m, expires in 12h00m)",
            typo.display()
        )
    );
    assert_eq!(code, 3);

    // An interface named in `interfaces` that has no lease there.
    let (code, row) = check_with(
        work.path(),
        &format!("paths = [\"{}\"]\ninterfaces = [\"eth1\"]\n", dir.display()),
    );
    assert_eq!(
        (code, row["status"].as_str(), row["message"].as_str()),
        (
            3,
            Some("unknown"),
            Some(
                format!(
                    "no current DHCP lease for eth1 (named in interfaces) in {}",
                    dir.display()
                )
                .as_str()
            )
        )
    );
}
