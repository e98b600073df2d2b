//! What the daemon tells systemd (`Type=notify`, the datagram protocol of `sd_notify(3)` on
//! `$NOTIFY_SOCKET`): `READY=1` once it serves, `RELOADING=1` with `MONOTONIC_USEC` when a
//! SIGHUP reload begins and `READY=1` again when it ends, with a `STATUS=` line saying how it
//! went (and `ERRNO=` when the new file was refused), `STOPPING=1` at the end. Outside systemd
//! (no `$NOTIFY_SOCKET`) every call does nothing.

use sd_notify::NotifyState;

/// `EINVAL`: what a refused reload reports as `ERRNO=`.
const EINVAL: u32 = 22;

/// Start-up is done: the API listens and the probes run.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// A reload begins. `MONOTONIC_USEC` lets systemd (253+) match it to `systemctl reload`.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => tracing::debug!("cannot read the monotonic clock for MONOTONIC_USEC: {e}"),
    }
    send(&states);
}

/// A reload ended: `Ok(status)` with the new configuration in force, `Err(why)` with the old
/// one still in force. Either way the daemon is ready again.
pub fn reloaded(outcome: Result<&str, &str>) {
    match outcome {
        Ok(status) => send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]),
        Err(why) => {
            let status = format!(
                "reload refused, the previous configuration is still in force: {}",
                one_line(why)
            );
            send(&[
                NotifyState::Status(&status),
                NotifyState::Errno(EINVAL),
                NotifyState::Ready,
            ]);
        }
    }
}

/// The daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The first line of a message (the protocol is one `KEY=VALUE` per line).
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify systemd on $NOTIFY_SOCKET: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_stay_one_line() {
        assert_eq!(one_line("a.toml:3:1: bad\n  hint: fix"), "a.toml:3:1: bad");
        assert_eq!(one_line(""), "");
    }
}
