//! `lookout lint net` through the real binary on fixture trees (tests/fixtures/lint/): exact
//! output lines and exit codes. The trees are copied to a temp dir and their modes set here,
//! since git does not keep modes reliably.

mod kit;

use kit::{lookout_bin, require_root, sh};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Copies a fixture tree into a temp dir and sets every file's mode (`modes` overrides).
fn tree(name: &str, modes: &[(&str, u32)]) -> (tempfile::TempDir, PathBuf) {
    // Dispatcher scripts must be owned by root to run; the fixtures are created as the user
    // running the test.
    require_root("the lint fixtures (NetworkManager dispatcher scripts must be owned by root)");
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lint")
        .join(name);
    sh(
        "cp",
        &["-r", src.to_str().unwrap(), tmp.path().to_str().unwrap()],
    );
    let root = tmp.path().join(name);
    sh("chmod", &["-R", "u=rwX,go=rX", root.to_str().unwrap()]);
    for (rel, mode) in modes {
        sh(
            "chmod",
            &[&format!("{mode:o}"), root.join(rel).to_str().unwrap()],
        );
    }
    (tmp, root)
}

fn lint(args: &[PathBuf]) -> (i32, Vec<String>) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(lookout_bin())
        .args(["lint", "net"])
        .args(args)
        .output()
        .expect("run lookout lint net");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        text.lines().map(str::to_string).collect(),
    )
}

const RUNNER_PATH: &str = "hooks get whatever PATH their runner sets (ifupdown2 and busybox ifup pass on the caller's, e.g. cron's /usr/bin:/bin)";
const DHCP: &str = "is configured by DHCP: a lease that expires can take its routes with it; prefer static addressing on servers";

#[test]
fn interfaces_file_with_bare_ip_in_post_up_and_dhcp_exits_1() {
    for tool in ["/sbin/ip", "/sbin/sysctl"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is needed (Debian packages iproute2 and procps)"
        );
    }
    let (_tmp, root) = tree("bad", &[]);
    let file = root.join("network/interfaces");
    let vpn = root.join("network/interfaces.d/vpn");
    let (code, lines) = lint(std::slice::from_ref(&file));
    let f = file.display();
    let v = vpn.display();
    assert_eq!(
        lines,
        vec![
            format!("{f}:6: eth0 {DHCP}"),
            format!(
                "{f}:7: post-up calls `ip` by bare name; {RUNNER_PATH} and `ip` is in sbin on many systems; use /sbin/ip"
            ),
            format!(
                "{v}:3: up calls `sysctl` by bare name; {RUNNER_PATH} and `sysctl` is in sbin on many systems; use /sbin/sysctl"
            ),
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn every_kind_of_hook_in_the_bad_tree_is_reported() {
    let (_tmp, root) = tree(
        "bad",
        &[
            ("NetworkManager/dispatcher.d/50-routes", 0o644),
            ("dhcp/dhclient-exit-hooks.d/routes.sh", 0o644),
        ],
    );
    let args: Vec<PathBuf> = [
        "NetworkManager/dispatcher.d",
        "dhcp/dhclient-exit-hooks.d",
        "systemd/network",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let (code, lines) = lint(&args);
    let nm = root.join("NetworkManager/dispatcher.d/50-routes");
    let dh = root.join("dhcp/dhclient-exit-hooks.d/routes.sh");
    let nd = root.join("systemd/network/10-eth0.network");
    assert_eq!(
        lines,
        vec![
            format!(
                "{}:0: not executable, so NetworkManager-dispatcher silently skips it; chmod 755 {}",
                nm.display(),
                nm.display()
            ),
            format!(
                "{}:0: run-parts skips this name (only letters, digits, `_` and `-` are allowed), so dhclient-script never runs it; rename it to routes",
                dh.display()
            ),
            format!(
                "{}:3: this hook calls `restart-vpn-tunnel`, which is not installed in any of /sbin, /bin, /usr/sbin, /usr/bin, /usr/local/sbin, /usr/local/bin; install it or call it by its absolute path",
                dh.display()
            ),
            format!("{}:5: eth0 {DHCP}", nd.display()),
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn the_good_tree_is_clean_and_exits_0() {
    let (_tmp, root) = tree("good", &[("NetworkManager/dispatcher.d/50-routes", 0o755)]);
    let args: Vec<PathBuf> = [
        "network/interfaces",
        "NetworkManager/dispatcher.d",
        "dhcp/dhclient-exit-hooks.d",
        "systemd/network",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let (code, lines) = lint(&args);
    assert_eq!(
        lines,
        vec!["ok: no findings in the 4 paths given".to_string()]
    );
    assert_eq!(code, 0);
}

#[test]
fn the_same_dispatcher_script_made_executable_is_clean() {
    // The finding was the mode, not the content: `ip` is on the dispatcher's PATH.
    let (_tmp, root) = tree("bad", &[("NetworkManager/dispatcher.d/50-routes", 0o755)]);
    let dir = root.join("NetworkManager/dispatcher.d");
    let (code, lines) = lint(std::slice::from_ref(&dir));
    assert_eq!(
        (code, lines),
        (0, vec![format!("ok: no findings in {}", dir.display())])
    );
}

#[test]
fn a_missing_file_is_named_as_unreadable_not_as_a_finding_at_line_0() {
    // Issue 10, trap 10: `lint net /nonexistent` printed `/nonexistent:0: …`.
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nonexistent");
    let out = Command::new("timeout")
        .arg("30")
        .arg(lookout_bin())
        .args(["lint", "net"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        stderr.starts_with(&format!("lookout: cannot read {}: ", missing.display()))
            && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn a_script_run_from_post_up_is_linted_with_ifupdowns_path_rules() {
    // The seed's failure: the post-up script that re-added the routes called `ip` by bare name.
    require_root("the lint fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let script = kit::write_file(
        tmp.path(),
        "vpn-routes",
        "#!/bin/sh\nset -e\nip route add 10.8.0.0/16 via 192.168.1.1\nlogger -t vpn routes added\n",
    );
    let interfaces = kit::write_file(
        tmp.path(),
        "interfaces",
        &format!(
            "auto eth0\niface eth0 inet static\n    address 192.168.1.10/24\n    post-up {}\n",
            script.display()
        ),
    );
    sh("chmod", &["644", script.to_str().unwrap()]);
    let (code, lines) = lint(std::slice::from_ref(&interfaces));
    let s = script.display();
    assert_eq!(
        lines,
        vec![format!(
            "{}:4: post-up runs {s}, which is not executable; chmod 755 {s}",
            interfaces.display()
        )]
    );
    assert_eq!(code, 1);

    sh("chmod", &["755", script.to_str().unwrap()]);
    let (code, lines) = lint(std::slice::from_ref(&interfaces));
    assert_eq!(
        lines,
        vec![format!(
            "{s}:3: this hook calls `ip` by bare name; {RUNNER_PATH} and `ip` is in sbin on many systems; use /sbin/ip"
        )]
    );
    assert_eq!(code, 1);
}

#[test]
fn case_patterns_in_a_dhclient_hook_are_not_programs() {
    // Issue 9 item 15: `case "$reason" in BOUND|RENEW|REBOOT)` on one line reported "this hook
    // calls `RENEW`, which is not installed". The arms' commands are still checked.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dhclient-exit-hooks.d");
    std::fs::create_dir(&dir).unwrap();
    let hook = kit::write_file(
        &dir,
        "routes",
        concat!(
            "# Sourced by dhclient-script after every lease change.\n",
            "case \"$reason\" in BOUND|RENEW|REBOOT)\n",
            "    ip route replace 10.8.0.0/16 via 192.168.1.1 ;;\n",
            "  EXPIRE | \"FAIL\" | 'RELEASE' | STOP*)\n",
            "    logger -t routes \"lease gone: $reason\"\n",
            "    ;&\n",
            "  (PREINIT|PREINIT6)\n",
            "    restart-vpn-tunnel ;;\n",
            "esac\n",
        ),
    );
    let (code, lines) = lint(std::slice::from_ref(&dir));
    assert_eq!(
        lines,
        vec![format!(
            "{}:8: this hook calls `restart-vpn-tunnel`, which is not installed in any of /sbin, /bin, /usr/sbin, /usr/bin, /usr/local/sbin, /usr/local/bin; install it or call it by its absolute path",
            hook.display()
        )]
    );
    assert_eq!(code, 1);
}

#[test]
fn check_once_says_why_its_net_lint_row_is_there() {
    // Issue 9 item 18: `check --once` showed a `net_lint` row that nothing in the file
    // configures. It stays (the daemon lints the host with any configuration and raises
    // `net_lint`), and says so.
    let tmp = tempfile::tempdir().unwrap();
    let config = kit::write_config(
        tmp.path(),
        "lookout.toml",
        "[[probe]]\nid = \"root\"\nkind = \"disk\"\nmounts = [\"/\"]\n",
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg(lookout_bin())
        .arg("--config")
        .arg(&config)
        .args(["check", "--once", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let lint = &rows[1];
    assert_eq!(
        (&lint["probe"], &lint["kind"]),
        (&"net_lint".into(), &"lint".into())
    );
    let message = lint["message"].as_str().unwrap();
    assert!(
        message.starts_with("built in, whatever the configuration: the daemon lints this host's network configuration at start and raises net_lint (details: lookout lint net): "),
        "{message}"
    );
}
