//! The forecast on the benchmark's traces: no false pages where the disk never fills, pages
//! before full (and no later than the stock Prometheus rule) where it does, and still firing
//! while full. Quality assertions, not timings.

#[path = "../benches/traces.rs"]
mod traces;

use traces::{lookout_verdict, prometheus_verdict, traces};

#[test]
fn lookout_pages_early_and_only_when_the_disk_fills() {
    for t in traces() {
        let l = lookout_verdict(&t);
        let p = prometheus_verdict(&t);
        eprintln!("{}: lookout {l:?} prometheus {p:?}", t.name);
        match t.full_at() {
            None => {
                assert_eq!(l.false_pages, 0, "{}: false pages", t.name);
                assert!(!l.firing_at_end, "{}: still firing", t.name);
            }
            Some(0.0) => assert!(
                l.firing_at_end,
                "{}: a disk full for users from the start is critical",
                t.name
            ),
            Some(_) => {
                // A page that resolves in the middle of a fill is a flap (issue 9, item 3).
                assert_eq!(
                    l.false_pages, 0,
                    "{}: pages that resolved before full",
                    t.name
                );
                let first = l.lead_first.expect("paged before full");
                assert!(
                    first >= p.lead_first.unwrap_or(0.0),
                    "{}: earlier than Prometheus",
                    t.name
                );
                assert!(
                    l.lead_critical.is_some_and(|c| c > 3.0 * 3600.0),
                    "{}: critical ≥ 3 h before full: {l:?}",
                    t.name
                );
                assert!(l.firing_at_end, "{}: still critical while full", t.name);
            }
        }
    }
}
