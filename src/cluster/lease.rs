//! When a node may act on its lease: the arithmetic that keeps two nodes from paging at once.
//!
//! etcd counts a lease's TTL from the moment *it* receives a keep-alive, which is never before
//! the node sent it. So if the node notes the monotonic instant `sent` just before it sends a
//! keep-alive and the answer grants `ttl`, the lease cannot expire on the etcd side before
//! `sent + ttl`. The node treats the lease as held only until
//!
//! ```text
//! acts_until = sent + ttl − margin        margin = max(1 s, ttl / 4)
//! ```
//!
//! and stops paging at that instant unless a later keep-alive moved it. The margin covers a
//! clock that runs up to 25 % fast between two renewals and a page whose request was already
//! on its way. Another node can take the leader key only after the lease expired on the etcd
//! side (≥ `sent + ttl`), so between the old leader's last page and the new leader's first
//! there are at least `margin` seconds: at no moment do two nodes page. The new leader
//! looks for the free key every cluster tick (250 ms), so paging resumes at most
//! `ttl + 250 ms` plus one etcd round trip after the old leader's last renewal — within
//! `lease_ttl + 1 s` of its death. Keep-alives go out every `ttl / 6`, so one lost
//! round trip never costs the lead (at the minimum TTL of 2 s: every 333 ms, acting for 1 s).

use std::time::{Duration, Instant};

/// How long before the lease's earliest possible expiry a node stops acting on it.
pub fn margin(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_secs(1))
}

/// How often a lease is renewed.
pub fn renew_every(ttl: Duration) -> Duration {
    ttl / 6
}

/// The monotonic deadline of a lease held by this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseClock {
    /// Until when the node may act; `None` while it holds no lease.
    acts_until: Option<Instant>,
}

impl LeaseClock {
    /// A keep-alive (or the grant) sent at `sent` was answered with `granted` TTL.
    pub fn renewed(&mut self, sent: Instant, granted: Duration) {
        let until = sent + granted.saturating_sub(margin(granted));
        // A late answer to an older keep-alive never shortens what a newer one gave.
        self.acts_until = Some(self.acts_until.map_or(until, |u| u.max(until)));
    }

    /// The lease is gone (revoked, expired, or a keep-alive said TTL 0).
    pub fn lost(&mut self) {
        self.acts_until = None;
    }

    /// Whether the node may still act on the lease at `now`.
    pub fn valid(&self, now: Instant) -> bool {
        self.acts_until.is_some_and(|u| now < u)
    }

    /// How long the node may still act, at `now`.
    pub fn left(&self, now: Instant) -> Duration {
        self.acts_until
            .map(|u| u.saturating_duration_since(now))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stops_acting_a_margin_before_the_earliest_expiry() {
        let t0 = Instant::now();
        let mut l = LeaseClock::default();
        assert!(!l.valid(t0));
        l.renewed(t0, Duration::from_secs(5));
        // margin = max(1 s, 5 s / 4) = 1.25 s: acts until t0 + 3.75 s.
        assert!(l.valid(t0 + Duration::from_millis(3_740)));
        assert!(!l.valid(t0 + Duration::from_millis(3_750)));
        // etcd cannot expire the lease before t0 + 5 s, so the gap is the margin.
        assert_eq!(
            Duration::from_secs(5) - l.left(t0),
            margin(Duration::from_secs(5))
        );
    }

    #[test]
    fn the_minimum_ttl_keeps_a_one_second_gap_and_renews_twice_before_it() {
        let ttl = Duration::from_secs(2);
        assert_eq!(margin(ttl), Duration::from_secs(1));
        assert_eq!(
            renew_every(ttl),
            Duration::from_millis(333) + Duration::from_nanos(333_333)
        );
        // Two renewals fit before the node must stop: one lost round trip costs nothing.
        assert!(renew_every(ttl) * 2 < ttl - margin(ttl));
    }

    #[test]
    fn a_late_answer_never_shortens_the_lease_and_loss_ends_it() {
        let t0 = Instant::now();
        let mut l = LeaseClock::default();
        l.renewed(t0 + Duration::from_secs(2), Duration::from_secs(4));
        l.renewed(t0, Duration::from_secs(4));
        assert!(l.valid(t0 + Duration::from_millis(4_900)));
        l.lost();
        assert!(!l.valid(t0));
        assert_eq!(l.left(t0), Duration::ZERO);
    }
}
