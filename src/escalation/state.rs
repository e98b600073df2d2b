//! The escalation state machine: one [`Escalation`] per group of alerts, walking its policy's
//! steps on the monotonic clock until acknowledged; pages come out as [`Page`]s for the
//! dispatcher. Pure: no I/O, no clock reads.

use super::policy::{DEFAULT_GROUP_WAIT, Paging, Policy};
use crate::alert::{Alert, AlertEvent, AlertEventKind};
use crate::model::{Moment, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One contact method to use in the current step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The person it belongs to (`None` for a notifier named directly).
    pub person: Option<String>,
    /// The schedule the person was found through.
    pub via: Option<String>,
    /// The notifier id.
    pub notifier: String,
    /// Its place in the person's contact list.
    pub order: usize,
    /// Seconds after the step started.
    pub delay: f64,
    /// Paged already in this step.
    pub sent: bool,
    /// Its delivery failed for good.
    pub failed: bool,
    /// Due at once (an earlier contact of the same person failed).
    pub now: bool,
}

/// Where an escalation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting `group_wait` for more alerts before the first page.
    Waiting,
    /// Paging the current step.
    Paging,
    /// Every step and repeat done and no `repeat_interval`: nothing more is sent until acknowledged.
    Exhausted,
    /// Acknowledged; the acknowledgement may expire.
    Acknowledged,
}

/// The escalation of one group of alerts. Persisted as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Group id (an alert id, or a hash of the route and the `group_by` values).
    pub id: String,
    /// The index of the route that took the first alert.
    pub route: usize,
    /// The policy id.
    pub policy: String,
    /// Open alerts of the group.
    pub alerts: BTreeSet<String>,
    /// The alert the pages speak about (the first of the group, updated as it changes).
    pub lead: Alert,
    /// Unix seconds when the escalation began (part of every dedup key).
    pub started_wall: f64,
    /// Where it is.
    pub phase: Phase,
    /// Current step (0-based).
    pub step: usize,
    /// Current repeat: 0 on the first pass through the steps, 1 … `repeat` on the passes that
    /// run every step again, and beyond `repeat` for the last step paged every
    /// `repeat_interval`. (Persisted as `repeat`; state written before the rename says `round`.)
    #[serde(alias = "round")]
    pub repeat: u32,
    /// Restarts after expired acknowledgements.
    pub epoch: u32,
    /// Unix seconds when the phase (or step) nominally began: the previous phase's nominal
    /// start plus its wait, not the tick that noticed it, so lateness never adds up. What a
    /// restart counts the remaining wait from.
    pub since_wall: f64,
    /// Monotonic seconds of the same instant (not persisted: rebuilt from `since_wall`).
    #[serde(skip)]
    pub since_mono: f64,
    /// Contacts of the current step.
    pub contacts: Vec<Contact>,
    /// Every notifier paged for this escalation (resolution goes to them).
    pub paged: BTreeSet<String>,
    /// Who acknowledged.
    pub acked_by: Option<String>,
}

/// What a page says.
#[derive(Clone, Debug, PartialEq)]
pub enum PageKind {
    /// Wake up: a step paged you.
    Trigger,
    /// Someone acknowledged (to the paged only).
    Acknowledged(String),
    /// It is over (to the paged only).
    Resolved,
}

/// One message to one notifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The escalation.
    pub group: String,
    /// The notifier.
    pub notifier: String,
    /// The person paged, if any.
    pub person: Option<String>,
    /// What it says.
    pub kind: PageKind,
    /// Dedup key: unique per (escalation, epoch, step, repeat, notifier).
    pub key: String,
    /// The alert it is about.
    pub alert: Alert,
    /// Step (0-based; messages and keys show it 1-based).
    pub step: usize,
    /// Repeat (0 on the first pass).
    pub repeat: u32,
}

/// What a tick or an event produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    /// Messages to send.
    pub pages: Vec<Page>,
    /// Timeline notes: (alert id, message).
    pub notes: Vec<(String, String)>,
    /// Alerts whose acknowledgement expired (to re-open in the engine).
    pub reopened: Vec<String>,
    /// Escalations changed (`Some`) or finished (`None`), to persist.
    pub changed: Vec<(String, Option<Escalation>)>,
    /// The event left every route: notify it as without escalation too.
    pub unrouted: bool,
}

/// Every running escalation.
#[derive(Clone, Debug, Default)]
pub struct Escalations {
    groups: BTreeMap<String, Escalation>,
    by_alert: BTreeMap<String, String>,
    /// How late a transition may be and still count from its nominal time (`None`:
    /// [`MAX_CATCH_UP`]); see `catch_up.rs`.
    catch_up: Option<f64>,
}

impl Escalation {
    fn base(&self) -> String {
        format!(
            "esc:{}@{}",
            self.id,
            (self.started_wall * 1000.0).round() as i64
        )
    }

    fn trigger_key(&self, notifier: &str) -> String {
        format!(
            "{}:e{}:step{}:repeat{}:{notifier}",
            self.base(),
            self.epoch,
            self.step + 1,
            self.repeat
        )
    }

    fn page(&self, notifier: &str, person: Option<String>, kind: PageKind, key: String) -> Page {
        Page {
            group: self.id.clone(),
            notifier: notifier.to_string(),
            person,
            kind,
            key,
            alert: self.lead.clone(),
            step: self.step,
            repeat: self.repeat,
        }
    }
}

/// Where a step stands in words, the same on pages, the timeline and the CLI: `step 2`, or
/// `step 2, repeat 1` once the policy repeats (`step` 0-based as stored).
pub fn step_words(step: usize, repeat: u32) -> String {
    if repeat == 0 {
        format!("step {}", step + 1)
    } else {
        format!("step {}, repeat {repeat}", step + 1)
    }
}

/// A page's dedup key in today's form. Keys written before lookout said "repeat" everywhere
/// read `…:e<epoch>:s<step, 0-based>:r<round>:<notifier>`; the notification log of an older
/// version still holds them, so they are read through this to keep at-least-once dedup across
/// the upgrade (`…:e<epoch>:step<step, 1-based>:repeat<repeat>:<notifier>`).
pub fn canonical_key(key: &str) -> std::borrow::Cow<'_, str> {
    let legacy = (|| {
        let rest = key.strip_prefix("esc:")?;
        let at = rest.find('@')?;
        let (head, tail) = rest.split_at(at);
        let mut parts = tail.splitn(5, ':');
        let start = parts.next()?;
        let epoch = parts.next().filter(|p| p.starts_with('e'))?;
        let step: usize = parts.next()?.strip_prefix('s')?.parse().ok()?;
        let repeat: u32 = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let notifier = parts.next()?;
        Some(format!(
            "esc:{head}{start}:{epoch}:step{}:repeat{repeat}:{notifier}",
            step + 1
        ))
    })();
    match legacy {
        Some(k) => std::borrow::Cow::Owned(k),
        None => std::borrow::Cow::Borrowed(key),
    }
}

/// The escalation (group) id a page's dedup key belongs to: `esc:{group}@{ms}:…`.
pub fn group_of_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("esc:")?;
    let (group, _) = rest.split_once('@')?;
    (!group.is_empty()).then_some(group)
}

impl Escalations {
    /// The open alerts of escalation `group`, if it is running.
    pub fn group_alerts(&self, group: &str) -> Option<Vec<String>> {
        self.groups
            .get(group)
            .map(|e| e.alerts.iter().cloned().collect())
    }

    /// The escalation an open alert belongs to.
    pub fn group_of(&self, alert: &str) -> Option<&str> {
        self.by_alert.get(alert).map(String::as_str)
    }

    /// Who hears that `notifier` cannot deliver: for every escalation that paged through it
    /// and is not acknowledged, the contacts of its current step (the people being paged, by
    /// their other contacts, and the step's channels) except the failing one. Never a later
    /// step: those people are not being paged yet. Empty when no such escalation runs.
    pub fn channel_failure_recipients(&self, notifier: &str) -> BTreeSet<String> {
        self.groups
            .values()
            .filter(|e| e.phase != Phase::Acknowledged && e.paged.contains(notifier))
            .flat_map(|e| e.contacts.iter())
            .map(|c| c.notifier.clone())
            .filter(|n| n != notifier)
            .collect()
    }

    /// Running escalations.
    pub fn list(&self) -> impl Iterator<Item = &Escalation> {
        self.groups.values()
    }

    /// Takes escalations back after a restart: each phase waits only for what remained.
    ///
    /// `alerts` are the restored alerts: an acknowledgement recorded in an alert but not yet in
    /// its escalation (a crash between the two writes) still stops the escalation.
    pub fn restore(&mut self, list: Vec<Escalation>, alerts: &[Alert], now: Moment) {
        for mut e in list {
            if e.phase != Phase::Acknowledged
                && let Some(a) = alerts.iter().find(|a| {
                    e.alerts.contains(&a.id) && a.state == crate::alert::AlertState::Acknowledged
                })
            {
                e.phase = Phase::Acknowledged;
                e.acked_by = a.acked_by.clone();
                e.since_wall = a.acked_at.unwrap_or(now.wall);
            }
            let elapsed = (now.wall - e.since_wall).max(0.0);
            e.since_mono = now.mono - elapsed;
            for a in &e.alerts {
                self.by_alert.insert(a.clone(), e.id.clone());
            }
            self.groups.insert(e.id.clone(), e);
        }
    }

    /// Takes an alert event. `None` when no route takes the alert (the caller then notifies
    /// as without escalation, as it also does when the result says `unrouted`).
    pub fn on_event(&mut self, paging: &Paging, ev: &AlertEvent, now: Moment) -> Option<Tick> {
        let a = &ev.alert;
        let mut out = Tick::default();
        let rerouted = if let Some(gid) = self.by_alert.get(&a.id).cloned() {
            // A severity change can move the alert to another route (a warning that turns
            // critical leaves the chat-only policy for the paging one).
            let moved = matches!(ev.kind, AlertEventKind::SeverityChanged { .. })
                && self
                    .groups
                    .get(&gid)
                    .is_some_and(|e| paging.route(a) != Some(e.route));
            if !moved {
                self.on_known(&gid, ev, now, &mut out);
                return Some(out);
            }
            self.detach(&gid, &a.id, &mut out);
            true
        } else {
            false
        };
        let starts = match ev.kind {
            AlertEventKind::Firing => true,
            // A severity change of an open, unacknowledged alert can bring it under a route.
            AlertEventKind::SeverityChanged { .. } => a.state == crate::alert::AlertState::Firing,
            _ => false,
        };
        if !starts {
            // An event of an alert with no escalation: routed alerts that fired before the
            // escalation existed (or were restored without one) are not re-paged.
            return paging.route(a).map(|_| out);
        }
        let Some(r) = paging.route(a) else {
            // No route takes it any more: the caller notifies as without escalation.
            out.unrouted = true;
            return rerouted.then_some(out);
        };
        let route = &paging.routes[r];
        let gid = paging.group_key(r, a);
        if let Some(e) = self.groups.get_mut(&gid) {
            e.alerts.insert(a.id.clone());
            self.by_alert.insert(a.id.clone(), gid.clone());
            out.notes.push((
                a.id.clone(),
                format!(
                    "{} on {} joined escalation {gid} (grouped; no new page)",
                    a.rule, a.probe
                ),
            ));
            out.changed.push((gid, Some(e.clone())));
            return Some(out);
        }
        let wait = route
            .group_wait
            .unwrap_or(if a.severity == Severity::Critical {
                0.0
            } else {
                DEFAULT_GROUP_WAIT
            });
        let e = Escalation {
            id: gid.clone(),
            route: r,
            policy: route.policy.clone(),
            alerts: BTreeSet::from([a.id.clone()]),
            lead: a.clone(),
            started_wall: now.wall,
            phase: Phase::Waiting,
            step: 0,
            repeat: 0,
            epoch: 0,
            since_wall: now.wall,
            since_mono: now.mono,
            contacts: Vec::new(),
            paged: BTreeSet::new(),
            acked_by: None,
        };
        out.notes.push((
            a.id.clone(),
            format!(
                "escalation {gid} started under policy {}{}",
                route.policy,
                if wait > 0.0 {
                    format!(" (group_wait {wait}s)")
                } else {
                    String::new()
                }
            ),
        ));
        self.by_alert.insert(a.id.clone(), gid.clone());
        self.groups.insert(gid.clone(), e);
        self.advance(paging, &gid, now, &mut out);
        Some(out)
    }

    /// Takes an alert out of its group (after a severity change moved it to another route);
    /// a group left empty ends without a message.
    fn detach(&mut self, gid: &str, alert: &str, out: &mut Tick) {
        self.by_alert.remove(alert);
        let Some(e) = self.groups.get_mut(gid) else {
            return;
        };
        e.alerts.remove(alert);
        if e.alerts.is_empty() {
            self.groups.remove(gid);
            out.changed.push((gid.to_string(), None));
        } else {
            out.changed.push((gid.to_string(), Some(e.clone())));
        }
        out.notes.push((
            alert.to_string(),
            format!("severity changed: the alert leaves escalation {gid} for another route"),
        ));
    }

    /// Keeps the alert a group's pages speak about current when it changed without an event
    /// (a stale marker set or taken away), so a repeat page says what is known now.
    pub fn refresh(&mut self, alert: &Alert) {
        let Some(e) = self
            .by_alert
            .get(&alert.id)
            .and_then(|g| self.groups.get_mut(g))
        else {
            return;
        };
        if e.lead.id == alert.id {
            e.lead = alert.clone();
        }
    }

    fn on_known(&mut self, gid: &str, ev: &AlertEvent, now: Moment, out: &mut Tick) {
        let Some(e) = self.groups.get_mut(gid) else {
            return;
        };
        let a = &ev.alert;
        if e.lead.id == a.id {
            e.lead = a.clone();
        }
        match &ev.kind {
            AlertEventKind::Firing | AlertEventKind::SeverityChanged { .. } => {}
            AlertEventKind::Suppressed => {}
            AlertEventKind::Acknowledged { by } => {
                if e.phase != Phase::Acknowledged {
                    e.phase = Phase::Acknowledged;
                    e.since_wall = now.wall;
                    e.since_mono = now.mono;
                    e.acked_by = Some(by.clone());
                    e.lead = a.clone();
                    for n in e.paged.clone() {
                        let key = format!("{}:ack{}:{n}", e.base(), e.epoch);
                        out.pages
                            .push(e.page(&n, None, PageKind::Acknowledged(by.clone()), key));
                    }
                    out.notes.push((
                        a.id.clone(),
                        format!("{by} acknowledged: escalation {gid} stops"),
                    ));
                }
            }
            AlertEventKind::Resolved => {
                e.alerts.remove(&a.id);
                self.by_alert.remove(&a.id);
                if e.lead.id == a.id {
                    e.lead = a.clone();
                }
                if e.alerts.is_empty() {
                    let e = self.groups.remove(gid).expect("group exists");
                    for n in &e.paged {
                        let key = format!("{}:resolved:{n}", e.base());
                        out.pages.push(e.page(n, None, PageKind::Resolved, key));
                    }
                    out.notes.push((
                        a.id.clone(),
                        format!(
                            "resolved: escalation {gid} ends; {} paged target(s) told",
                            e.paged.len()
                        ),
                    ));
                    out.changed.push((gid.to_string(), None));
                    return;
                }
            }
        }
        let e = self.groups.get(gid).expect("group exists").clone();
        out.changed.push((gid.to_string(), Some(e)));
    }

    /// A delivery failed for good: the person's next contact method is used at once.
    pub fn delivery_failed(&mut self, paging: &Paging, key: &str, now: Moment) -> Tick {
        let mut out = Tick::default();
        let hit = self.groups.iter_mut().find_map(|(gid, e)| {
            let i = e
                .contacts
                .iter()
                .position(|c| c.sent && e.trigger_key(&c.notifier) == canonical_key(key))?;
            Some((gid.clone(), e, i))
        });
        let Some((gid, e, i)) = hit else {
            return out;
        };
        e.contacts[i].failed = true;
        let failed = e.contacts[i].clone();
        if let Some(person) = &failed.person
            && let Some(next) = e
                .contacts
                .iter_mut()
                .filter(|c| c.person.as_ref() == Some(person) && !c.sent && c.order > failed.order)
                .min_by_key(|c| c.order)
        {
            next.now = true;
            out.notes.push((
                e.lead.id.clone(),
                format!(
                    "{} failed for {person}; falling back to {} at once",
                    failed.notifier, next.notifier
                ),
            ));
        }
        self.advance(paging, &gid, now, &mut out);
        out
    }

    /// Moves every escalation on to `now`: due contacts, next steps, expired acknowledgements.
    pub fn tick(&mut self, paging: &Paging, now: Moment) -> Tick {
        let mut out = Tick::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for gid in ids {
            self.advance(paging, &gid, now, &mut out);
        }
        out
    }

    fn advance(&mut self, paging: &Paging, gid: &str, now: Moment, out: &mut Tick) {
        let limit = self.catch_up.unwrap_or(MAX_CATCH_UP);
        let Some(e) = self.groups.get_mut(gid) else {
            return;
        };
        if !paging.policies.contains_key(&e.policy) {
            // The policy went away in a reload: the alert's route now decides; the new policy
            // starts from its first step (unless the escalation was acknowledged).
            let Some(r) = paging.route(&e.lead) else {
                return;
            };
            let policy = paging.routes[r].policy.clone();
            out.notes.push((
                e.lead.id.clone(),
                format!(
                    "policy {} is no longer configured: escalation {} continues under {policy}",
                    e.policy, e.id
                ),
            ));
            e.route = r;
            e.policy = policy;
            if e.phase != Phase::Acknowledged {
                e.phase = Phase::Waiting;
                e.epoch += 1;
                e.since_wall = now.wall;
                e.since_mono = now.mono;
            }
            out.changed.push((gid.to_string(), Some(e.clone())));
        }
        let Some(policy) = paging.policies.get(&e.policy) else {
            return;
        };
        let before = e.clone();
        // A few transitions may be due at once (e.g. after a long pause); bound the loop.
        for _ in 0..64 {
            let elapsed = now.mono - e.since_mono;
            match e.phase {
                Phase::Waiting => {
                    let route = &paging.routes[e.route.min(paging.routes.len() - 1)];
                    let wait =
                        route
                            .group_wait
                            .unwrap_or(if e.lead.severity == Severity::Critical {
                                0.0
                            } else {
                                DEFAULT_GROUP_WAIT
                            });
                    if elapsed < wait {
                        break;
                    }
                    let at = nominal(e, wait, now, limit);
                    start_step(paging, policy, e, 0, 0, at, out);
                }
                Phase::Paging => {
                    let due: Vec<usize> = e
                        .contacts
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.sent && (c.now || elapsed >= c.delay))
                        .map(|(i, _)| i)
                        .collect();
                    for i in due {
                        e.contacts[i].sent = true;
                        let n = e.contacts[i].notifier.clone();
                        e.paged.insert(n.clone());
                        let key = e.trigger_key(&n);
                        let person = e.contacts[i].person.clone();
                        out.pages.push(e.page(&n, person, PageKind::Trigger, key));
                    }
                    let tail = e.repeat > policy.repeat;
                    let timeout = if tail {
                        policy.repeat_interval.unwrap_or(f64::INFINITY)
                    } else {
                        policy.steps[e.step.min(policy.steps.len() - 1)].ack_timeout
                    };
                    if elapsed < timeout {
                        break;
                    }
                    let last = policy.steps.len() - 1;
                    let at = nominal(e, timeout, now, limit);
                    if e.step < last && !tail {
                        let (s, r) = (e.step + 1, e.repeat);
                        start_step(paging, policy, e, s, r, at, out);
                    } else if e.repeat < policy.repeat {
                        let r = e.repeat + 1;
                        start_step(paging, policy, e, 0, r, at, out);
                    } else if policy.repeat_interval.is_some() {
                        // The first repeat of the last step (after the passes) comes the step's
                        // `ack_timeout` after it was paged; the next ones every
                        // `repeat_interval`.
                        let r = e.repeat + 1;
                        start_step(paging, policy, e, last, r, at, out);
                    } else {
                        e.phase = Phase::Exhausted;
                        out.notes.push((
                            e.lead.id.clone(),
                            format!(
                                "escalation {} went through every step without an acknowledgement; no more pages",
                                e.id
                            ),
                        ));
                    }
                }
                Phase::Exhausted => break,
                Phase::Acknowledged => {
                    let Some(expiry) = policy.ack_expiry else {
                        break;
                    };
                    if elapsed < expiry {
                        break;
                    }
                    e.epoch += 1;
                    e.acked_by = None;
                    out.reopened.extend(e.alerts.iter().cloned());
                    out.notes.push((
                        e.lead.id.clone(),
                        format!(
                            "the acknowledgement expired after {} and the alert still fires: escalation {} starts again",
                            crate::model::format_duration(expiry),
                            e.id
                        ),
                    ));
                    let at = nominal(e, expiry, now, limit);
                    start_step(paging, policy, e, 0, 0, at, out);
                }
            }
        }
        if *e != before {
            out.changed.push((gid.to_string(), Some(e.clone())));
        }
    }
}

fn start_step(
    paging: &Paging,
    policy: &Policy,
    e: &mut Escalation,
    step: usize,
    repeat: u32,
    now: Moment,
    out: &mut Tick,
) {
    let step = step.min(policy.steps.len() - 1);
    e.phase = Phase::Paging;
    e.step = step;
    e.repeat = repeat;
    e.since_wall = now.wall;
    e.since_mono = now.mono;
    let mut notes = Vec::new();
    e.contacts = paging.contacts(&policy.steps[step], now.wall, &mut notes);
    let who = e
        .contacts
        .iter()
        .map(|c| match (&c.person, &c.via) {
            (Some(p), Some(v)) => format!("{p} (on call in {v}) via {}", c.notifier),
            (Some(p), None) => format!("{p} via {}", c.notifier),
            _ => c.notifier.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.notes.push((
        e.lead.id.clone(),
        format!(
            "escalation {} {}: paging {}",
            e.id,
            step_words(step, repeat),
            if who.is_empty() { "nobody" } else { &who }
        ),
    ));
    for n in notes {
        out.notes.push((e.lead.id.clone(), n));
    }
}

mod catch_up;
mod handover;
pub use catch_up::MAX_CATCH_UP;
use catch_up::nominal;
#[cfg(test)]
mod tests;
