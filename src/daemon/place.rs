//! Where a daemon's things are, decided the same way by `lookout run` and by the CLI verbs that
//! talk to it: the state directory, the exclusive lock on it, and the API address the daemon
//! leaves there for the CLI (see docs/cli.md).
//!
//! The state directory is, in this order: `--state-dir` (or `LOOKOUT_STATE_DIR`), the
//! configuration's `[daemon] state_dir`, [`SYSTEM_STATE_DIR`] when it exists (the Debian
//! package creates it), else [`LOCAL_STATE_DIR`]. The store lives inside it, so one lock covers
//! both: `STATE_DIR/lock` holds an exclusive `flock` for the daemon's whole life and names its
//! pid; a second daemon on the same directory exits at once naming the one that holds it.

use anyhow::{Context, Result, bail};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The state directory of a system install.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/lookout";
/// The state directory when nothing else says where: relative to the working directory.
pub const LOCAL_STATE_DIR: &str = "./lookout-data";
/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// The file in the state directory naming the API address the daemon listens on.
pub const API_ADDRESS_FILE: &str = "api-address";

/// A state directory and why it was chosen (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct StateDir {
    /// The directory.
    pub path: PathBuf,
    /// Why this one: `--state-dir or LOOKOUT_STATE_DIR`, `[daemon] state_dir`, …
    pub why: &'static str,
}

/// Chooses the state directory: `explicit` (`--state-dir`/`LOOKOUT_STATE_DIR`), else
/// `configured` (`[daemon] state_dir`), else [`SYSTEM_STATE_DIR`] when it is a directory, else
/// [`LOCAL_STATE_DIR`].
pub fn choose_state_dir(explicit: Option<&Path>, configured: Option<&Path>) -> StateDir {
    choose_with(explicit, configured, Path::new(SYSTEM_STATE_DIR).is_dir())
}

/// [`choose_state_dir`] with whether [`SYSTEM_STATE_DIR`] exists given (pure).
fn choose_with(explicit: Option<&Path>, configured: Option<&Path>, system: bool) -> StateDir {
    let (path, why) = match (explicit, configured) {
        (Some(p), _) => (p.to_path_buf(), "--state-dir or LOOKOUT_STATE_DIR"),
        (None, Some(p)) => (p.to_path_buf(), "[daemon] state_dir"),
        (None, None) if system => (
            PathBuf::from(SYSTEM_STATE_DIR),
            "the system state directory, which exists",
        ),
        (None, None) => (
            PathBuf::from(LOCAL_STATE_DIR),
            "the default, as /var/lib/lookout does not exist",
        ),
    };
    StateDir { path, why }
}

impl StateDir {
    /// The path made absolute against the working directory, for messages.
    pub fn absolute(&self) -> PathBuf {
        std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone())
    }
}

/// The exclusive lock on a state directory, held until dropped (or the process ends: the
/// kernel releases a `flock` with its last descriptor, so a `kill -9` leaves nothing stale).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Takes the exclusive lock on `dir` (created if missing) and writes this process's pid into
/// the lock file; fails at once, naming the holder's pid, when another process holds it.
/// Blocking: call it at start.
pub fn lock_state_dir(dir: &StateDir) -> Result<StateLock> {
    let shown = dir.absolute();
    std::fs::create_dir_all(&dir.path)
        .with_context(|| format!("cannot create the state directory {}", shown.display()))?;
    let path = dir.path.join(LOCK_FILE);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open the lock file {} (state directory chosen as {}; --state-dir picks another)",
                std::path::absolute(&path).unwrap_or(path.clone()).display(),
                dir.why
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "a process that has not written its pid yet".to_string(),
            };
            bail!(
                "another lookout ({holder}) is running with the state directory {} (it holds {}); \
                 stop it first, or give this one its own --state-dir",
                shown.display(),
                shown.join(LOCK_FILE).display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e)
                .with_context(|| format!("cannot lock {}", shown.join(LOCK_FILE).display()));
        }
    }
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_data()
    };
    write(&mut file).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(StateLock { _file: file })
}

/// The address a client on this host reaches a listener bound to `bound` on: a wildcard
/// (`0.0.0.0`, `::`) becomes the loopback of its family.
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    let mut a = bound;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// Writes `STATE_DIR/api-address` (`http://IP:PORT`) so the CLI finds a daemon started with
/// `--listen`; a failure is logged, never fatal. Blocking: call it at start.
pub fn remember_api_address(state_dir: &Path, bound: SocketAddr) {
    let text = format!("http://{}\n", reachable(bound));
    let write = || -> std::io::Result<()> {
        let tmp = state_dir.join(format!("{API_ADDRESS_FILE}.tmp"));
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, state_dir.join(API_ADDRESS_FILE))
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, dir = %state_dir.display(), "cannot write the API address for the CLI: `lookout` verbs will need --api");
    }
}

/// The API address a daemon left in `state_dir`, if any.
pub fn remembered_api_address(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join(API_ADDRESS_FILE)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_chosen_in_the_documented_order() {
        let flag = Path::new("/flag");
        let conf = Path::new("/conf");
        assert_eq!(choose_with(Some(flag), Some(conf), true).path, flag);
        assert_eq!(choose_with(None, Some(conf), true).path, conf);
        assert_eq!(
            choose_with(None, None, true).path,
            Path::new(SYSTEM_STATE_DIR)
        );
        assert_eq!(
            choose_with(None, None, false).path,
            Path::new(LOCAL_STATE_DIR)
        );
    }

    #[test]
    fn a_second_lock_fails_naming_the_pid_and_the_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let sd = choose_with(Some(dir.path()), None, false);
        let first = lock_state_dir(&sd).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let e = format!("{:#}", lock_state_dir(&sd).unwrap_err());
        assert!(
            e.contains(&format!("pid {}", std::process::id())) && e.contains("another lookout"),
            "{e}"
        );
        drop(first);
        lock_state_dir(&sd).expect("free again once the first lock is dropped");
    }

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        let a: SocketAddr = "0.0.0.0:9330".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "127.0.0.1:9330");
        let a: SocketAddr = "[::]:9330".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "[::1]:9330");
        let a: SocketAddr = "192.0.2.1:9330".parse().unwrap();
        assert_eq!(reachable(a), a);
    }
}
