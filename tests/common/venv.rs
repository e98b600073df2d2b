//! Python venvs for the real peers written in Python (aiosmtpd, Synapse, Heisenbridge): made
//! once under `$HOME/.cache/lookout-test/NAME` with the given packages, serialised across test
//! binaries by a lock file, every step bounded by a timeout. Included by path by the kits that
//! need it. A venv is made where it will live (moving one breaks its scripts' shebangs), and
//! marked ready only after `pip install` succeeded.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e} (is python3-venv installed?)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv directory `name` with `packages` installed; made if missing (pip gets
/// `install_secs`; another binary making it is waited for as long).
pub fn ensure(name: &str, packages: &[&str], install_secs: u64) -> PathBuf {
    let parent = home().join(".cache/lookout-test");
    let venv = parent.join(name);
    let ready = venv.join(format!(".ready-{}", packages.join("-")));
    if ready.exists() {
        return venv;
    }
    std::fs::create_dir_all(&parent).unwrap();
    let lock = parent.join(format!("{name}.lock"));
    let deadline = Instant::now() + Duration::from_secs(install_secs + 120);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if ready.exists() => return venv,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "{} held too long; remove it if stale",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let result = std::panic::catch_unwind(|| {
        let python = venv.join("bin/python");
        if !python.exists() {
            run(
                Command::new("timeout")
                    .args(["120", "python3", "-m", "venv"])
                    .arg(&venv),
                "python3 -m venv",
            );
        }
        run(
            Command::new("timeout")
                .arg(install_secs.to_string())
                .arg(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
                .args(packages),
            &format!("pip install {}", packages.join(" ")),
        );
        std::fs::write(&ready, "").unwrap();
    });
    let _ = std::fs::remove_file(&lock);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    venv
}
