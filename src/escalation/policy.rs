//! Compiled routes and policies: which route takes an alert, how alerts are grouped, and
//! which contacts a step pages (people, on-call schedules, notifiers). Pure.

use super::matcher::{Matcher, all_match};
use super::schedule::Schedule;
use super::state::Contact;
use crate::alert::Alert;
use crate::config::Config;
use crate::model::{Labels, Severity};
use std::collections::BTreeMap;

/// The default `group_wait` of non-critical alerts.
pub const DEFAULT_GROUP_WAIT: f64 = 30.0;

/// The compiled routing and escalation configuration.
#[derive(Clone, Debug, Default)]
pub struct Paging {
    pub(super) routes: Vec<Route>,
    pub(super) policies: BTreeMap<String, Policy>,
    people: BTreeMap<String, Vec<(String, f64)>>,
    schedules: BTreeMap<String, Schedule>,
}

#[derive(Clone, Debug)]
pub(super) struct Route {
    pub(super) matchers: Vec<Matcher>,
    pub(super) severities: Vec<Severity>,
    pub(super) policy: String,
    pub(super) group_by: Vec<String>,
    pub(super) group_wait: Option<f64>,
}

#[derive(Clone, Debug)]
pub(super) struct Policy {
    pub(super) steps: Vec<Step>,
    pub(super) repeat: u32,
    pub(super) repeat_interval: Option<f64>,
    pub(super) ack_expiry: Option<f64>,
}

#[derive(Clone, Debug)]
pub(super) struct Step {
    pub(super) targets: Vec<String>,
    pub(super) ack_timeout: f64,
}

impl Paging {
    /// Compiles a validated configuration; `None` when no route is configured (then every
    /// notifier gets every alert by its `min_severity`, as without escalation).
    pub fn from_config(c: &Config) -> Option<Paging> {
        if c.routes.is_empty() {
            return None;
        }
        let routes = c
            .routes
            .iter()
            .map(|r| Route {
                matchers: r
                    .matchers
                    .iter()
                    .filter_map(|m| Matcher::parse(m).ok())
                    .collect(),
                severities: r.severities.clone(),
                policy: r.policy.clone(),
                group_by: r.group_by.clone(),
                group_wait: r.group_wait.map(|d| d.secs()),
            })
            .collect();
        let policies = c
            .policies
            .iter()
            .map(|p| {
                let steps: Vec<Step> = p
                    .step
                    .iter()
                    .map(|s| Step {
                        targets: s.targets.clone(),
                        ack_timeout: s.ack_timeout(),
                    })
                    .collect();
                let last = steps.last().map(|s| s.ack_timeout).unwrap_or(300.0);
                let repeat_interval = match p.repeat_interval {
                    Some(d) if d.0.is_zero() => None,
                    Some(d) => Some(d.secs()),
                    None => Some(last),
                };
                (
                    p.id.clone(),
                    Policy {
                        steps,
                        repeat: p.repeat,
                        repeat_interval,
                        ack_expiry: p.ack_expiry(),
                    },
                )
            })
            .collect();
        let people = c
            .people
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.contacts
                        .iter()
                        .map(|k| (k.notifier.clone(), k.delay.map(|d| d.secs()).unwrap_or(0.0)))
                        .collect(),
                )
            })
            .collect();
        let schedules = c
            .schedules
            .iter()
            .filter_map(|s| Schedule::compile(s).ok().map(|x| (s.id.clone(), x)))
            .collect();
        Some(Paging {
            routes,
            policies,
            people,
            schedules,
        })
    }

    /// The first route that matches the alert: its index.
    pub fn route(&self, alert: &Alert) -> Option<usize> {
        let labels = match_labels(alert);
        self.routes.iter().position(|r| {
            (r.severities.is_empty() || r.severities.contains(&alert.severity))
                && all_match(&r.matchers, &labels)
        })
    }

    /// The group key of an alert under route `r`.
    pub(super) fn group_key(&self, r: usize, alert: &Alert) -> String {
        let route = &self.routes[r];
        if route.group_by.is_empty() {
            return alert.id.clone();
        }
        let labels = match_labels(alert);
        let values = route
            .group_by
            .iter()
            .map(|k| format!("{k}={}", labels.get(k).map(String::as_str).unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",");
        let full = format!("route{r}|{values}");
        use sha2::Digest;
        let digest = sha2::Sha256::digest(full.as_bytes());
        format!("g{}", &hex::encode(digest)[..15])
    }

    /// The schedules, for `lookout oncall`.
    pub fn schedules(&self) -> &BTreeMap<String, Schedule> {
        &self.schedules
    }

    /// Expands a step's targets into contacts at `wall` time; notes say who was not reachable.
    pub(super) fn contacts(&self, step: &Step, wall: f64, notes: &mut Vec<String>) -> Vec<Contact> {
        let mut out: Vec<Contact> = Vec::new();
        let mut add =
            |person: Option<&str>, via: Option<&str>, notifier: &str, delay: f64, order: usize| {
                if out.iter().any(|c| c.notifier == notifier) {
                    return;
                }
                out.push(Contact {
                    person: person.map(str::to_string),
                    via: via.map(str::to_string),
                    notifier: notifier.to_string(),
                    order,
                    delay,
                    sent: false,
                    failed: false,
                    now: false,
                });
            };
        for t in &step.targets {
            let (person, via) = if let Some(s) = self.schedules.get(t) {
                match s.on_call_at(wall) {
                    Some(p) => (p, Some(t.as_str())),
                    None => {
                        notes.push(format!("nobody is on call in schedule {t}"));
                        continue;
                    }
                }
            } else {
                (t.clone(), None)
            };
            match self.people.get(&person) {
                Some(contacts) => {
                    for (i, (n, d)) in contacts.iter().enumerate() {
                        add(Some(&person), via, n, *d, i);
                    }
                }
                None => add(None, None, &person, 0.0, 0),
            }
        }
        out
    }
}

/// The labels routes and silences match on: the alert's labels plus `probe`, `rule`,
/// `alertname` and `severity` (the alert's own labels win).
pub fn match_labels(alert: &Alert) -> Labels {
    let mut l = alert.labels.clone();
    for (k, v) in [
        ("probe", alert.probe.as_str()),
        ("rule", alert.rule.as_str()),
        ("alertname", alert.rule.as_str()),
        ("severity", alert.severity.as_str()),
    ] {
        l.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    l
}
