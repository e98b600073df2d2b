//! `scripts/bench forecast`: lead time before full and false pages of lookout's default disk
//! rules and of the stock Prometheus rule, side by side on the same traces; then the cost of
//! one forecast (criterion).

mod traces;

use criterion::Criterion;
use lookout::rule::forecast::{ForecastParams, Point, forecast};
use traces::{lead, lookout_verdict, prometheus_verdict, traces};

fn table() {
    println!(
        "\n| trace | fills after | lookout: first page before full | lookout: critical before full | lookout: false pages | lookout firing at end | Prometheus: page before full | Prometheus: false pages | Prometheus firing at end |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for t in traces() {
        let l = lookout_verdict(&t);
        let p = prometheus_verdict(&t);
        println!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.name,
            t.what,
            lead(t.full_at()),
            lead(l.lead_first),
            lead(l.lead_critical),
            l.false_pages,
            if l.firing_at_end { "yes" } else { "no" },
            lead(p.lead_first),
            p.false_pages,
            if p.firing_at_end { "yes" } else { "no" },
        );
    }
    println!();
}

fn speed(c: &mut Criterion) {
    // Six hours of one-minute samples, steady growth: the daemon's per-run work per filesystem.
    let points: Vec<Point> = (0..360)
        .map(|i| Point {
            t: i as f64 * 60.0,
            avail: 1e11 - i as f64 * 1e6,
        })
        .collect();
    let params = ForecastParams::default();
    c.bench_function("forecast 360 points", |b| {
        b.iter(|| {
            forecast(
                std::hint::black_box(&points),
                2e11,
                21_540.0,
                86_400.0,
                &params,
            )
        })
    });
}

fn main() {
    table();
    let mut c = Criterion::default().configure_from_args().sample_size(30);
    speed(&mut c);
    c.final_summary();
}
