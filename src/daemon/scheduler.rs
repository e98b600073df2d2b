//! Runs each probe on its own interval (monotonic, with jitter), bounded by its timeout and a
//! shared limit on concurrent runs. A stuck probe costs its own timeout, nothing else.

use super::core::Core;
use crate::model::Observation;
use crate::probe::Probe;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

/// One probe to schedule.
pub struct Scheduled {
    /// Probe id.
    pub id: String,
    /// The check.
    pub probe: Arc<dyn Probe>,
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
}

/// The running probe tasks; dropping it does not stop them, [`Scheduler::stop`] does.
pub struct Scheduler {
    tasks: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts one task per probe, and lets [`Core::run_probe_now`] run them on demand.
    pub fn start(
        core: Arc<Core>,
        probes: Vec<Scheduled>,
        max_concurrent: usize,
        jitter: f64,
    ) -> Scheduler {
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let probes: Vec<Arc<Scheduled>> = probes.into_iter().map(Arc::new).collect();
        core.set_on_demand(probes.clone(), permits.clone());
        let tasks = probes
            .into_iter()
            .map(|p| tokio::spawn(run_probe(core.clone(), p, permits.clone(), jitter)))
            .collect();
        Scheduler { tasks }
    }

    /// Adds a task that lives and dies with the probe tasks (replaced on reload).
    pub fn attach(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops every probe task.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

fn spread(interval: Duration, jitter: f64) -> Duration {
    let max = interval.mul_f64(jitter.clamp(0.0, 0.5));
    if max.is_zero() {
        Duration::ZERO
    } else {
        rand::rng().random_range(Duration::ZERO..=max)
    }
}

async fn run_probe(core: Arc<Core>, p: Arc<Scheduled>, permits: Arc<Semaphore>, jitter: f64) {
    // Spread the first runs so probes with equal intervals do not run in lockstep.
    let mut next = Instant::now() + spread(p.interval, jitter).min(Duration::from_secs(2));
    loop {
        sleep_until(next).await;
        let started = Instant::now();
        let obs = run_once(&p, &permits).await;
        core.record(&p.id, obs);
        let now = Instant::now();
        if let Some(retry) = p.probe.retry_after().filter(|r| *r < p.interval) {
            // The probe asks to confirm what it saw sooner: no jitter, at once if overdue.
            next = (started + retry).max(now);
            tracing::debug!(probe = %p.id, "running again within {retry:?} to confirm");
            continue;
        }
        next += p.interval + spread(p.interval, jitter);
        if next < now {
            // Missed runs are skipped, not replayed in a burst.
            next = now + spread(p.interval, jitter);
        }
    }
}

/// Runs a probe once within its timeout (waiting for a free slot counts against it too).
pub async fn run_once(p: &Scheduled, permits: &Semaphore) -> Observation {
    let started = std::time::Instant::now();
    let result = timeout(p.timeout, async {
        let _permit = permits.acquire().await;
        p.probe.run().await
    })
    .await;
    let mut obs = result.unwrap_or_else(|_| Observation::timed_out(p.timeout));
    obs.duration_seconds = started.elapsed().as_secs_f64();
    obs
}
