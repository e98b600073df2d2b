//! Handing escalations from one pager to another (cluster mode): a new leader replaces its
//! escalations with the shared ones, adopts those another node started during a fallback,
//! and re-sends the pages of the current step that no node recorded as delivered.

use super::{Escalation, Escalations, PageKind, Phase, canonical_key};
use crate::alert::Alert;
use crate::model::Moment;
use std::collections::BTreeSet;

impl Escalations {
    /// Replaces every escalation with `list` (each phase waits only for what remained).
    pub fn replace(&mut self, list: Vec<Escalation>, alerts: &[Alert], now: Moment) {
        let catch_up = self.catch_up;
        *self = Escalations::default();
        self.catch_up = catch_up;
        self.restore(list, alerts, now);
    }

    /// Takes in the escalations of `list` this set does not know; answers them.
    pub fn adopt(&mut self, list: Vec<Escalation>, now: Moment) -> Vec<Escalation> {
        let new: Vec<Escalation> = list
            .into_iter()
            .filter(|e| !self.groups.contains_key(&e.id))
            .filter(|e| e.alerts.iter().all(|a| !self.by_alert.contains_key(a)))
            .collect();
        self.restore(new.clone(), &[], now);
        new
    }

    /// Keeps only the escalations `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(&Escalation) -> bool) {
        let gone: Vec<String> = self
            .groups
            .values()
            .filter(|e| !keep(e))
            .map(|e| e.id.clone())
            .collect();
        for g in gone {
            if let Some(e) = self.groups.remove(&g) {
                for a in e.alerts {
                    self.by_alert.remove(&a);
                }
            }
        }
    }

    /// Pages of the current steps marked sent whose dedup key is not among `delivered`: the
    /// old pager may have died before it delivered them, so the new one sends them (at most
    /// one duplicate, when it died between delivering and recording).
    pub fn unconfirmed(&self, delivered: &BTreeSet<String>) -> Vec<super::Page> {
        let known: BTreeSet<String> = delivered
            .iter()
            .map(|k| canonical_key(k).into_owned())
            .collect();
        let mut out = Vec::new();
        for e in self.groups.values() {
            if e.phase != Phase::Paging && e.phase != Phase::Exhausted {
                continue;
            }
            for c in e.contacts.iter().filter(|c| c.sent && !c.failed) {
                let key = e.trigger_key(&c.notifier);
                if !known.contains(&key) {
                    out.push(e.page(&c.notifier, c.person.clone(), PageKind::Trigger, key));
                }
            }
        }
        out
    }
}
