//! The daemon side of escalation: routes alert events into the pure state machine
//! (`crate::escalation`), sends its pages, persists its state, and applies silences and
//! maintenance windows. Nothing here waits on the store.

use super::core::Core;
use crate::alert::INTERNAL_PROBE;
use crate::alert::{Alert, AlertEvent, AlertEventKind};
use crate::config::Config;
use crate::config::paging::MetaRoute;
use crate::escalation::silence::{Maintenance, Silence};
use crate::escalation::{Escalation, Escalations, Paging, Tick};
use crate::model::{Moment, format_duration};
use crate::notify::dispatch::Dispatcher;
use crate::notify::dispatch::NOTIFIER_FAILING_RULE;
use crate::store::TimelineEntry;
use crate::store::writer::StoreOp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

/// Escalation, silences and maintenance state of the running daemon.
#[derive(Default)]
pub struct PagingState {
    pub(super) paging: RwLock<Option<Arc<Paging>>>,
    pub(super) escalations: Mutex<Escalations>,
    pub(super) silences: Mutex<Vec<Silence>>,
    pub(super) maintenance: RwLock<Vec<Maintenance>>,
    /// Names of maintenance windows open at the last tick, and silences seen in force.
    pub(super) open_windows: Mutex<(BTreeSet<String>, BTreeSet<String>)>,
    /// Alerts whose firing was not paged because a silence or window covered it.
    pub(super) muted: Mutex<BTreeSet<String>>,
    /// `[paging] meta_route`.
    pub(super) meta_route: RwLock<MetaRoute>,
    /// Open `notifier_failing` alerts sent to the people being paged: alert id → the notifiers
    /// told, which also hear its acknowledgement and resolution.
    pub(super) meta_told: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Core {
    /// Applies `[[route]]`, `[[policy]]`, `[[person]]`, `[[schedule]]` and `[[maintenance]]`
    /// of a (re)loaded configuration. Running escalations keep going under the new policies.
    pub fn set_paging(&self, config: &Config) {
        let p = Paging::from_config(config).map(Arc::new);
        *self.paging.paging.write().expect("paging lock") = p;
        *self.paging.meta_route.write().expect("meta route lock") = config.paging.meta_route;
        *self.paging.maintenance.write().expect("maintenance lock") = config
            .maintenance
            .iter()
            .filter_map(|m| Maintenance::compile(m).ok())
            .collect();
    }

    /// Takes back escalations and silences from the store after a restart.
    pub fn restore_paging(&self, escalations: Vec<Escalation>, silences: Vec<Silence>) {
        let now = self.clock.now();
        let n = escalations.len();
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .restore(escalations, &self.alerts(), now);
        {
            let mut open = self.paging.open_windows.lock().expect("windows lock");
            for s in &silences {
                if s.active(now.wall) {
                    open.1.insert(s.id.clone());
                }
            }
        }
        *self.paging.silences.lock().expect("silences lock") = silences;
        // A firing alert a silence or window covers now was (most likely) held back before the
        // restart: it is paged when the silence ends, as it would have been without the restart.
        let held: Vec<String> = self
            .alerts()
            .into_iter()
            .filter(|a| a.state == crate::alert::AlertState::Firing)
            .filter(|a| self.muted_by(a, now.wall).is_some())
            .map(|a| a.id)
            .collect();
        self.paging.muted.lock().expect("muted lock").extend(held);
        if n > 0 {
            tracing::info!(
                escalations = n,
                "escalations restored; each step waits only for what remained"
            );
        }
    }

    /// Acknowledges what a page stood for, on behalf of `by`: every open alert of the page's
    /// escalation (a grouped page speaks for the whole group), else the page's own alert.
    /// Used for acknowledgements from channels (a ✅ in Matrix); `lookout ack` and the API
    /// acknowledge the one alert they name (which stops its group's escalation too).
    pub fn acknowledge_page(
        &self,
        alert_id: &str,
        group: Option<&str>,
        by: &str,
    ) -> Result<Vec<Alert>, String> {
        let members: Vec<String> = {
            let esc = self.paging.escalations.lock().expect("escalations lock");
            let gid = group
                .filter(|g| esc.group_alerts(g).is_some())
                .or_else(|| esc.group_of(alert_id));
            gid.and_then(|g| esc.group_alerts(g)).unwrap_or_default()
        };
        let mut ids = vec![alert_id.to_string()];
        ids.extend(members.into_iter().filter(|m| m != alert_id));
        let mut open: BTreeSet<String> = self
            .alerts()
            .into_iter()
            .filter(|a| a.state == crate::alert::AlertState::Firing)
            .map(|a| a.id)
            .collect();
        if let Some(c) = self.cluster() {
            // Another node's alert, paged by this leader, is acknowledged through etcd.
            open.extend(
                c.state()
                    .view
                    .into_values()
                    .filter(|a| a.state == crate::alert::AlertState::Firing)
                    .map(|a| a.id),
            );
        }
        let mut acked = Vec::new();
        let mut first_error = None;
        for id in ids {
            if !open.contains(&id) {
                first_error.get_or_insert_with(|| format!("alert {id} is not firing"));
                continue;
            }
            match self.acknowledge(&id, by) {
                Ok(a) => acked.push(a),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if acked.is_empty() {
            return Err(first_error.unwrap_or_else(|| "nothing to acknowledge".into()));
        }
        Ok(acked)
    }

    /// Running escalations (for the API).
    pub fn escalations(&self) -> Vec<Escalation> {
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .list()
            .cloned()
            .collect()
    }

    /// Gives the escalation that pages about `alert` its latest state (a stale marker set or
    /// taken away changes no alert event, but a repeat page must say it).
    pub(super) fn refresh_paged_alert(&self, alert: &Alert) {
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .refresh(alert);
    }

    /// Whether a silence or maintenance window covers the alert now; says which.
    pub fn muted_by(&self, alert: &Alert, wall: f64) -> Option<String> {
        if let Some(s) = self
            .paging
            .silences
            .lock()
            .expect("silences lock")
            .iter()
            .find(|s| s.silences(alert, wall))
        {
            return Some(format!("silence {} by {} ({})", s.id, s.author, s.comment));
        }
        self.paging
            .maintenance
            .read()
            .expect("maintenance lock")
            .iter()
            .find(|m| m.covers(alert, wall))
            .map(|m| format!("maintenance window {}", m.name))
    }

    /// Sends an alert event to the people it concerns: silenced/maintenance alerts are not
    /// paged; routed alerts go through escalation; the rest to every notifier by severity.
    pub(super) fn notify(&self, ev: &AlertEvent, dispatcher: &Dispatcher) {
        if !ev.kind.notifies() {
            return;
        }
        let now = self.clock.now();
        let id = &ev.alert.id;
        if matches!(ev.kind, AlertEventKind::Firing) {
            if let Some(why) = self.muted_by(&ev.alert, now.wall) {
                self.paging
                    .muted
                    .lock()
                    .expect("muted lock")
                    .insert(id.clone());
                self.escalation_note(
                    now,
                    id,
                    "alert_silenced",
                    format!("{} on {} not paged: {why}", ev.alert.rule, ev.alert.probe),
                );
                return;
            }
        } else {
            let mut muted = self.paging.muted.lock().expect("muted lock");
            if muted.contains(id) {
                if matches!(ev.kind, AlertEventKind::Resolved) {
                    muted.remove(id);
                }
                return;
            }
        }
        self.route(ev, now, dispatcher);
    }

    fn route(&self, ev: &AlertEvent, now: Moment, dispatcher: &Dispatcher) {
        if let Some(to) = self.meta_recipients(ev) {
            self.escalation_note(
                now,
                &ev.alert.id,
                "escalation",
                format!(
                    "{} {}: told the people being paged through it, by {}",
                    ev.alert.rule,
                    ev.alert
                        .labels
                        .get("notifier")
                        .map(String::as_str)
                        .unwrap_or("?"),
                    to.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            dispatcher.dispatch_to(ev, &to);
            return;
        }
        let paging = self.paging.paging.read().expect("paging lock").clone();
        if let Some(p) = paging {
            let tick = self
                .paging
                .escalations
                .lock()
                .expect("escalations lock")
                .on_event(&p, ev, now);
            if let Some(t) = tick {
                let unrouted = t.unrouted;
                self.apply(t, now, dispatcher);
                if !unrouted {
                    return;
                }
            }
        }
        dispatcher.dispatch(ev);
    }

    /// Where a `notifier_failing` event goes under `[paging] meta_route = "paged"`: the contacts
    /// of the current steps that paged through the failing channel (remembered for its
    /// acknowledgement and resolution). `None`: route it like any alert.
    fn meta_recipients(&self, ev: &AlertEvent) -> Option<BTreeSet<String>> {
        let a = &ev.alert;
        if a.probe != INTERNAL_PROBE || a.rule != NOTIFIER_FAILING_RULE {
            return None;
        }
        let mut told = self.paging.meta_told.lock().expect("meta lock");
        if *self.paging.meta_route.read().expect("meta route lock") != MetaRoute::Paged {
            told.remove(&a.id);
            return None;
        }
        match ev.kind {
            AlertEventKind::Firing | AlertEventKind::SeverityChanged { .. } => {
                let failing = a.labels.get("notifier")?;
                let to = self
                    .paging
                    .escalations
                    .lock()
                    .expect("escalations lock")
                    .channel_failure_recipients(failing);
                if to.is_empty() {
                    told.remove(&a.id);
                    return None;
                }
                told.insert(a.id.clone(), to.clone());
                Some(to)
            }
            AlertEventKind::Resolved => told.remove(&a.id),
            _ => told.get(&a.id).cloned(),
        }
    }

    /// A delivery failed for good: an escalation uses the person's next contact at once.
    pub fn delivery_failed(&self, dedup_key: &str) {
        if !dedup_key.starts_with("esc:") {
            return;
        }
        let Some(p) = self.paging.paging.read().expect("paging lock").clone() else {
            return;
        };
        let now = self.clock.now();
        let t = self
            .paging
            .escalations
            .lock()
            .expect("escalations lock")
            .delivery_failed(&p, dedup_key, now);
        self.apply(t, now, &self.dispatcher());
    }

    /// Moves escalations on, opens and closes maintenance windows, ends silences, and pages
    /// alerts whose silence ended while they still fire. Called four times a second.
    pub fn tick_paging(&self) {
        if let Some(c) = self.cluster()
            && !c.may_page()
        {
            return;
        }
        let now = self.clock.now();
        let dispatcher = self.dispatcher();
        self.watch_windows(now);
        let unmuted: Vec<Alert> = {
            let muted = self.paging.muted.lock().expect("muted lock").clone();
            if muted.is_empty() {
                Vec::new()
            } else {
                self.alerts()
                    .into_iter()
                    .filter(|a| muted.contains(&a.id) && a.state.is_open())
                    .filter(|a| self.muted_by(a, now.wall).is_none())
                    .collect()
            }
        };
        for a in unmuted {
            self.paging.muted.lock().expect("muted lock").remove(&a.id);
            self.escalation_note(
                now,
                &a.id,
                "alert_unsilenced",
                format!(
                    "{} on {} still fires and is no longer silenced: paging now",
                    a.rule, a.probe
                ),
            );
            let ev = AlertEvent {
                kind: AlertEventKind::Firing,
                alert: a,
                at: now.wall,
            };
            self.route(&ev, now, &dispatcher);
        }
        let Some(p) = self.paging.paging.read().expect("paging lock").clone() else {
            return;
        };
        let t = self
            .paging
            .escalations
            .lock()
            .expect("escalations lock")
            .tick(&p, now);
        if t != Tick::default() {
            self.apply(t, now, &dispatcher);
        }
    }

    fn watch_windows(&self, now: Moment) {
        let windows: BTreeSet<String> = self
            .paging
            .maintenance
            .read()
            .expect("maintenance lock")
            .iter()
            .filter(|m| m.active(now.wall))
            .map(|m| m.name.clone())
            .collect();
        let silences: Vec<Silence> = self.silences();
        let active: BTreeSet<String> = silences
            .iter()
            .filter(|s| s.active(now.wall))
            .map(|s| s.id.clone())
            .collect();
        let (old_w, old_s) = {
            let mut open = self.paging.open_windows.lock().expect("windows lock");
            std::mem::replace(&mut *open, (windows.clone(), active.clone()))
        };
        for w in windows.difference(&old_w) {
            self.paging_note(
                now,
                "maintenance_started",
                Some("config"),
                format!("maintenance window {w} opened: matching alerts are not paged"),
            );
        }
        for w in old_w.difference(&windows) {
            self.paging_note(
                now,
                "maintenance_ended",
                Some("config"),
                format!("maintenance window {w} closed"),
            );
        }
        for id in old_s.difference(&active) {
            if let Some(s) = silences.iter().find(|s| &s.id == id)
                && s.expired_by.is_none()
            {
                self.paging_note(
                    now,
                    "silence_ended",
                    Some(&s.author),
                    format!("silence {id} ({}) ended", s.matchers.join(", ")),
                );
            }
        }
    }

    pub(super) fn apply(&self, t: Tick, now: Moment, dispatcher: &Dispatcher) {
        for (alert, message) in t.notes {
            self.escalation_note(now, &alert, "escalation", message);
        }
        for id in t.reopened {
            if let Some(a) = self.with_engine(|e| e.reopen(&id, now)) {
                self.store.send(StoreOp::Alert(a));
            }
        }
        let cluster = self.cluster();
        for (id, e) in t.changed {
            let body = e.map(|e| serde_json::to_string(&e).unwrap_or_default());
            if let Some(c) = &cluster {
                c.send(crate::cluster::Write::Escalation {
                    id: id.clone(),
                    body: body.clone(),
                });
            }
            self.store.send(StoreOp::Escalation {
                id,
                body,
                ts: now.wall,
            });
        }
        for page in &t.pages {
            dispatcher.page(page, now.wall);
        }
    }

    pub(super) fn escalation_note(&self, now: Moment, alert: &str, kind: &str, message: String) {
        tracing::info!(alert, "{message}");
        self.timeline(TimelineEntry {
            ts: now.wall,
            kind: kind.into(),
            probe: None,
            alert_id: Some(alert.to_string()),
            severity: None,
            actor: None,
            message,
        });
    }

    fn paging_note(&self, now: Moment, kind: &str, actor: Option<&str>, message: String) {
        tracing::info!("{message}");
        self.timeline(TimelineEntry {
            ts: now.wall,
            kind: kind.into(),
            probe: None,
            alert_id: None,
            severity: None,
            actor: actor.map(str::to_string),
            message,
        });
    }

    /// Every silence (active, future and recently ended).
    pub fn silences(&self) -> Vec<Silence> {
        self.paging.silences.lock().expect("silences lock").clone()
    }

    /// Adds a silence for `seconds` from now; on the timeline with its author.
    pub fn add_silence(
        &self,
        matchers: Vec<String>,
        seconds: f64,
        comment: String,
        author: String,
    ) -> Result<Silence, String> {
        crate::escalation::silence::check_matchers(&matchers)?;
        if !(seconds > 0.0 && seconds.is_finite()) {
            return Err("the silence must last longer than 0s".into());
        }
        if author.trim().is_empty() {
            return Err("a silence needs an author".into());
        }
        let now = self.clock.now();
        let id = {
            use rand::Rng;
            let bytes: [u8; 6] = rand::rng().random();
            hex::encode(bytes)
        };
        let s = Silence {
            id,
            matchers,
            starts_at: now.wall,
            ends_at: now.wall + seconds,
            comment,
            author,
            expired_by: None,
        };
        self.save_silence(&s);
        self.paging
            .silences
            .lock()
            .expect("silences lock")
            .push(s.clone());
        self.paging
            .open_windows
            .lock()
            .expect("windows lock")
            .1
            .insert(s.id.clone());
        self.paging_note(
            now,
            "silence_added",
            Some(&s.author),
            format!(
                "{} silenced {} for {}: {}",
                s.author,
                s.matchers.join(", "),
                format_duration(seconds),
                s.comment
            ),
        );
        Ok(s)
    }

    /// Ends a silence (id or unique prefix, as for `ack`) now; on the timeline with who did it.
    pub fn expire_silence(&self, id: &str, by: &str) -> Result<Silence, String> {
        let now = self.clock.now();
        let s = {
            let mut list = self.paging.silences.lock().expect("silences lock");
            let at = silence_by_prefix(&list, id)?;
            let s = &mut list[at];
            let id = s.id.clone();
            if !s.active(now.wall) {
                return Err(format!("silence {id} is not in force"));
            }
            s.ends_at = now.wall;
            s.expired_by = Some(by.to_string());
            s.clone()
        };
        self.save_silence(&s);
        self.paging_note(
            now,
            "silence_expired",
            Some(by),
            format!("{by} expired silence {} ({})", s.id, s.matchers.join(", ")),
        );
        Ok(s)
    }

    pub(super) fn save_silence(&self, s: &Silence) {
        if let Some(c) = self.cluster() {
            c.send(crate::cluster::Write::Silence {
                id: s.id.clone(),
                body: serde_json::to_string(s).unwrap_or_default(),
            });
        }
        self.store.send(StoreOp::Silence {
            id: s.id.clone(),
            body: serde_json::to_string(s).unwrap_or_default(),
            ends_at: s.ends_at,
        });
    }
}

/// The silence whose id is `id` or, failing that, the only one whose id starts with it.
fn silence_by_prefix(list: &[Silence], id: &str) -> Result<usize, String> {
    if let Some(i) = list.iter().position(|s| s.id == id) {
        return Ok(i);
    }
    let found: Vec<usize> = (0..list.len())
        .filter(|&i| !id.is_empty() && list[i].id.starts_with(id))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no silence with id {id}")),
        many => Err(format!(
            "silence id {id} is ambiguous ({} silences start with it)",
            many.len()
        )),
    }
}
