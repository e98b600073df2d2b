//! `lookout config check`: one fixture file per error case, with the exact expected output.

mod kit;

use std::path::Path;
use std::process::Command;

fn check(path: &str) -> (i32, String, String) {
    let out = Command::new(kit::lookout_bin())
        .args(["config", "check", "--config", path])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LOOKOUT_FIXTURE_UNSET_SECRET")
        .output()
        .expect("run lookout");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_fixture_prints_exactly_its_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let rel = format!(
            "tests/fixtures/config/{}",
            path.file_name().unwrap().to_str().unwrap()
        );
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{rel} has no .expected file"));
        let (code, stdout, stderr) = check(&rel);
        assert_eq!(stdout, expected, "output of config check on {rel}");
        assert_eq!(code, 1, "{rel} must fail the check");
        assert!(
            stderr.contains("problem"),
            "{rel}: a count on stderr, got {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{rel}: {stderr}");
        cases += 1;
    }
    assert!(cases >= 15, "only {cases} fixtures found");
}

#[test]
fn many_errors_are_all_reported_in_file_order() {
    let (_, stdout, _) = check("tests/fixtures/config/many_errors.toml");
    let lines: Vec<usize> = stdout
        .lines()
        .filter(|l| !l.starts_with("  hint"))
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 8, 10, 15, 19, 21]);
}

#[test]
fn the_example_configuration_is_valid() {
    let (code, stdout, stderr) = check("examples/lookout.toml");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(": ok ("), "{stdout}");
}

#[test]
fn capped_values_are_warnings_at_their_line_and_column() {
    // Issue 9 #20: each value the daemon caps is a warning at its position, with the value
    // that will be used; the check still passes.
    let rel = "tests/fixtures/config-warnings/caps.toml";
    let (code, stdout, stderr) = check(rel);
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-warnings/caps.expected"),
    )
    .unwrap();
    assert_eq!(stdout, expected, "output of config check on {rel}");
    assert_eq!(code, 0, "warnings do not fail the check: {stderr}");
    assert!(!stdout.contains("secret-password"), "{stdout}");
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let (code, stdout, _) = check("does/not/exist.toml");
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("does/not/exist.toml: cannot read the configuration"),
        "{stdout}"
    );
    assert!(stdout.contains("hint: run without --config"), "{stdout}");
}

#[test]
fn no_input_panics_the_parser() {
    // Every truncation and many byte flips of a realistic file: errors, never a panic.
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lookout.toml"),
    )
    .unwrap();
    let path = Path::new("fuzz.toml");
    let bytes = src.as_bytes();
    for cut in (0..bytes.len()).step_by(7) {
        let text = String::from_utf8_lossy(&bytes[..cut]);
        let _ = lookout::config::parse_str(path, &text);
    }
    let mut seed = 0x9e3779b97f4a7c15u64;
    let noise = b"=[]{}\"',.#\n 0123456789abcdefgsmhd%\\";
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = bytes.to_vec();
        let pos = (seed as usize) % b.len();
        b[pos] = noise[(seed >> 32) as usize % noise.len()];
        let _ = lookout::config::parse_str(path, &String::from_utf8_lossy(&b));
    }
}

#[test]
fn a_dhcp_lease_path_that_does_not_exist_is_a_warning_at_its_position() {
    // Issue 9 item 17: a typo in `paths` silently disabled the lease check.
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("dhcp");
    std::fs::create_dir(&real).unwrap();
    let typo = tmp.path().join("dhpc");
    let config = kit::write_config(
        tmp.path(),
        "lookout.toml",
        &format!(
            "[[probe]]\nid = \"leases\"\nkind = \"dhcp_lease\"\npaths = [\"{}\", \"{}\"]\n",
            real.display(),
            typo.display()
        ),
    );
    let (code, stdout, stderr) = check(config.to_str().unwrap());
    // The second string starts after `paths = ["<real>", ` (columns count from 1).
    let column = "paths = [\"".len() + real.display().to_string().len() + "\", ".len() + 1;
    assert_eq!(
        stdout,
        format!(
            "{c}:4:{column}: warning: probe \"leases\": lease path {t} does not exist on this host: the probe will find no lease there and read unknown\n  hint: check the spelling; leave `paths` out to read the usual lease directories\n{c}: ok (1 probe (dhcp_lease), host view off, 0 notifiers, 1 warning)\n",
            c = config.display(),
            t = typo.display()
        )
    );
    assert_eq!(code, 0, "a warning does not fail the check: {stderr}");

    // Both paths present: no warning.
    std::fs::create_dir(&typo).unwrap();
    let (code, stdout, _) = check(config.to_str().unwrap());
    assert_eq!(
        (code, stdout),
        (
            0,
            format!(
                "{}: ok (1 probe (dhcp_lease), host view off, 0 notifiers)\n",
                config.display()
            )
        )
    );
}

#[test]
fn files_a_probe_reads_at_run_time_are_checked_on_this_host() {
    // Replayed from the docs: the reference's plugin and password files did not exist, and
    // `config check` said ok; only `check --once` showed it.
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("pg-password");
    std::fs::write(&empty, "\n").unwrap();
    let plugin = tmp.path().join("check_load");
    let config = kit::write_config(
        tmp.path(),
        "lookout.toml",
        &format!(
            "[[probe]]\nid = \"load\"\nkind = \"command\"\nargv = [\"{}\", \"-w\", \"5\"]\n\n[[probe]]\nid = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"lookout\"\npassword_file = \"{}\"\n",
            plugin.display(),
            empty.display()
        ),
    );
    let (code, stdout, stderr) = check(config.to_str().unwrap());
    let c = config.display();
    assert_eq!(code, 0, "warnings do not fail the check: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "{c}:4:1: warning: probe \"load\": {} does not exist on this host: every run will read unknown",
            plugin.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{c}:11:1: warning: probe \"db\": `password_file` {} is empty on this host",
            empty.display()
        )),
        "{stdout}"
    );
    // Once they are there, the check is quiet.
    std::fs::write(&empty, "s3cret\n").unwrap();
    std::fs::write(&plugin, "#!/bin/sh\necho OK\n").unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, stdout, _) = check(config.to_str().unwrap());
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
}
