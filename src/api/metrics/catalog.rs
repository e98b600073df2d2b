//! What each probe sample is called on `/metrics`, its type and its HELP text. Samples not listed
//! here (a Nagios plugin's perfdata) become gauges named after the sample with a generic HELP.

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (reset when lookout restarts); its name ends in `_total`.
    Counter,
}

/// One known sample: dotted sample name, metric name, type, HELP text.
pub struct Entry {
    /// The probe's sample name, e.g. `disk.avail_bytes`.
    pub sample: &'static str,
    /// The metric family's name on `/metrics`.
    pub metric: &'static str,
    /// Gauge or counter.
    pub kind: Type,
    /// One sentence for `# HELP`.
    pub help: &'static str,
}

const fn g(sample: &'static str, metric: &'static str, help: &'static str) -> Entry {
    Entry {
        sample,
        metric,
        kind: Type::Gauge,
        help,
    }
}

const fn c(sample: &'static str, metric: &'static str, help: &'static str) -> Entry {
    Entry {
        sample,
        metric,
        kind: Type::Counter,
        help,
    }
}

/// Every sample a built-in probe kind reports.
pub const SAMPLES: &[Entry] = &[
    g(
        "disk.size_bytes",
        "lookout_disk_size_bytes",
        "Filesystem size (f_blocks x f_frsize).",
    ),
    g(
        "disk.avail_bytes",
        "lookout_disk_avail_bytes",
        "Bytes available to unprivileged users (f_bavail x f_frsize).",
    ),
    g(
        "disk.free_bytes",
        "lookout_disk_free_bytes",
        "Free bytes including the root reserve (f_bfree x f_frsize).",
    ),
    g(
        "disk.reserved_bytes",
        "lookout_disk_reserved_bytes",
        "Bytes held back for root ((f_bfree - f_bavail) x f_frsize).",
    ),
    g(
        "disk.used_bytes",
        "lookout_disk_used_bytes",
        "Used bytes (size - free).",
    ),
    g(
        "disk.inodes_total",
        "lookout_disk_inodes",
        "Inodes of the filesystem, used or not.",
    ),
    g(
        "disk.inodes_avail",
        "lookout_disk_inodes_avail",
        "Inodes available to unprivileged users.",
    ),
    g(
        "disk.eta_seconds",
        "lookout_disk_eta_seconds",
        "Forecast seconds until the filesystem is full.",
    ),
    g(
        "disk.growth_bytes_per_second",
        "lookout_disk_growth_bytes_per_second",
        "Forecast consumption rate of the filesystem.",
    ),
    g(
        "disk.cause_bytes",
        "lookout_disk_cause_bytes",
        "Bytes held by a known cause of growth (e.g. a replication slot) on the filesystem.",
    ),
    g(
        "disk.cause_growth_bytes_per_second",
        "lookout_disk_cause_growth_bytes_per_second",
        "Growth rate of a known cause's bytes.",
    ),
    g(
        "clock.offset_seconds",
        "lookout_clock_offset_seconds",
        "Time server's clock minus this host's, per server; positive means the host is behind.",
    ),
    g(
        "clock.rtt_seconds",
        "lookout_clock_rtt_seconds",
        "Round-trip delay of the SNTP exchange, per server.",
    ),
    g(
        "clock.median_offset_seconds",
        "lookout_clock_median_offset_seconds",
        "Median offset over the servers that answered.",
    ),
    g(
        "clock.servers_answering",
        "lookout_clock_servers_answering",
        "Time servers that answered the last run.",
    ),
    g(
        "route.expected",
        "lookout_route_expected",
        "Routes expected to be present.",
    ),
    g(
        "route.present",
        "lookout_route_present",
        "Expected routes present.",
    ),
    g(
        "route.missing",
        "lookout_route_missing",
        "Expected routes missing.",
    ),
    g(
        "route.changed",
        "lookout_route_changed",
        "Expected routes present with another gateway or device.",
    ),
    g(
        "dhcp.renew_in_seconds",
        "lookout_dhcp_renew_in_seconds",
        "Seconds until the lease is due for renewal, per interface.",
    ),
    g(
        "dhcp.expires_in_seconds",
        "lookout_dhcp_expires_in_seconds",
        "Seconds until the lease expires, per interface.",
    ),
    g(
        "http.status_code",
        "lookout_http_status_code",
        "HTTP status code of the last response.",
    ),
    g(
        "http.duration_seconds",
        "lookout_http_duration_seconds",
        "Seconds from the start of the request to the end of the body.",
    ),
    g(
        "http.body_bytes",
        "lookout_http_body_bytes",
        "Bytes of body received.",
    ),
    g(
        "http.cert_expires_in_seconds",
        "lookout_http_cert_expires_in_seconds",
        "Seconds until the server's TLS certificate expires (negative once expired).",
    ),
    g(
        "tcp.connect_seconds",
        "lookout_tcp_connect_seconds",
        "Seconds to resolve the host and connect.",
    ),
    g(
        "tcp.duration_seconds",
        "lookout_tcp_duration_seconds",
        "Seconds for the whole run (connect, send, expect).",
    ),
    g(
        "process.count",
        "lookout_process_count",
        "Matching processes running.",
    ),
    g(
        "process.rss_bytes",
        "lookout_process_rss_bytes",
        "Resident memory of the matching processes.",
    ),
    c(
        "process.cpu_seconds",
        "lookout_process_cpu_seconds_total",
        "CPU time (user + system) of the matching processes.",
    ),
    c(
        "process.restarts_total",
        "lookout_process_restarts_total",
        "Restarts of the process seen since lookout started.",
    ),
    g(
        "systemd.restarts",
        "lookout_systemd_restarts",
        "The unit's NRestarts (automatic restarts since it was last started by hand).",
    ),
    g(
        "systemd.in_expected_state",
        "lookout_systemd_in_expected_state",
        "1 when the unit is in the expected state, else 0.",
    ),
    g(
        "pg.in_recovery",
        "lookout_pg_in_recovery",
        "1 on a standby (in recovery), 0 on a primary.",
    ),
    g(
        "pg.tls",
        "lookout_pg_tls",
        "1 when the probe's own session is encrypted, else 0.",
    ),
    g(
        "pg.standby.connected",
        "lookout_pg_standby_connected",
        "Per expected or present standby: 1 connected, 0 missing.",
    ),
    g(
        "pg.standby.missing_since_unix",
        "lookout_pg_standby_missing_since_timestamp_seconds",
        "Per missing standby: unix time it was first seen missing.",
    ),
    g(
        "pg.standby.streaming_as",
        "lookout_pg_standby_streaming_as",
        "Per missing expected standby: 1 when a standby named in the as label streams from its slot.",
    ),
    g(
        "pg.standby.count",
        "lookout_pg_standby_count",
        "Standbys connected (rows in pg_stat_replication).",
    ),
    g(
        "pg.standby.expected_count",
        "lookout_pg_standby_expected_count",
        "Configured expected_standby_count.",
    ),
    g(
        "pg.standby.short_since_unix",
        "lookout_pg_standby_short_since_timestamp_seconds",
        "Unix time the standby count first fell short of the expected count.",
    ),
    g(
        "pg.standby.send_lag_bytes",
        "lookout_pg_standby_send_lag_bytes",
        "Bytes not yet sent to the standby.",
    ),
    g(
        "pg.standby.flush_lag_bytes",
        "lookout_pg_standby_flush_lag_bytes",
        "Bytes not yet flushed by the standby.",
    ),
    g(
        "pg.standby.replay_lag_bytes",
        "lookout_pg_standby_replay_lag_bytes",
        "Bytes not yet replayed by the standby.",
    ),
    g(
        "pg.standby.write_lag_seconds",
        "lookout_pg_standby_write_lag_seconds",
        "The standby's write_lag.",
    ),
    g(
        "pg.standby.flush_lag_seconds",
        "lookout_pg_standby_flush_lag_seconds",
        "The standby's flush_lag.",
    ),
    g(
        "pg.standby.replay_lag_seconds",
        "lookout_pg_standby_replay_lag_seconds",
        "The standby's replay_lag.",
    ),
    g(
        "pg.slot.active",
        "lookout_pg_slot_active",
        "Per replication slot: 1 active, 0 inactive.",
    ),
    g(
        "pg.slot.retained_bytes",
        "lookout_pg_slot_retained_bytes",
        "Per slot: WAL bytes retained (current LSN - restart_lsn).",
    ),
    g(
        "pg.slot.safe_wal_size_bytes",
        "lookout_pg_slot_safe_wal_size_bytes",
        "Per slot: safe_wal_size (absent when retention is unlimited).",
    ),
    g(
        "pg.slot.wal_status",
        "lookout_pg_slot_wal_status",
        "Per slot: wal_status as a code (0 reserved, 1 extended, 2 unreserved, 3 lost).",
    ),
    g(
        "pg.slot.retained_growth_bytes_per_second",
        "lookout_pg_slot_retained_growth_bytes_per_second",
        "Per slot: growth of the retained bytes.",
    ),
    g(
        "pg.wal.dir_bytes",
        "lookout_pg_wal_dir_bytes",
        "Size of pg_wal (pg_ls_waldir()).",
    ),
    g(
        "pg.wal.mount",
        "lookout_pg_wal_mount",
        "1 for the filesystem (mount label) that holds pg_wal.",
    ),
    g(
        "pg.receiver.up",
        "lookout_pg_receiver_up",
        "1 when a WAL receiver runs on the standby.",
    ),
    g(
        "pg.receiver.streaming",
        "lookout_pg_receiver_streaming",
        "1 when the WAL receiver is streaming.",
    ),
    g(
        "pg.replay_paused",
        "lookout_pg_replay_paused",
        "1 when replay is paused.",
    ),
    g(
        "pg.receive_lsn_bytes",
        "lookout_pg_receive_lsn_bytes",
        "Last received LSN, as a byte position.",
    ),
    g(
        "pg.replay_lsn_bytes",
        "lookout_pg_replay_lsn_bytes",
        "Last replayed LSN, as a byte position.",
    ),
    g(
        "pg.replay_pending_bytes",
        "lookout_pg_replay_pending_bytes",
        "Received but not yet replayed bytes (0 when the stream is blocked).",
    ),
    g(
        "pg.replay_age_seconds",
        "lookout_pg_replay_age_seconds",
        "now() - pg_last_xact_replay_timestamp().",
    ),
    g(
        "pg.heartbeat_age_seconds",
        "lookout_pg_heartbeat_age_seconds",
        "Age of the replicated heartbeat row on a standby.",
    ),
    g(
        "pg.heartbeat.writer_failing_since_unix",
        "lookout_pg_heartbeat_writer_failing_since_timestamp_seconds",
        "Unix time the primary's probe started failing to write the heartbeat.",
    ),
    g(
        "pg.write_check_seconds",
        "lookout_pg_write_check_seconds",
        "Seconds the write check took.",
    ),
    g(
        "matrix.versions_seconds",
        "lookout_matrix_versions_seconds",
        "Seconds for GET /_matrix/client/versions.",
    ),
    g(
        "matrix.send_seconds",
        "lookout_matrix_send_seconds",
        "Seconds for the message send to be answered.",
    ),
    g(
        "matrix.visible_seconds",
        "lookout_matrix_visible_seconds",
        "Seconds from the start of the send until the message was read back.",
    ),
    g(
        "bridge.delivered",
        "lookout_bridge_delivered",
        "Per direction: 1 when the round's token arrived within the deadline, else 0.",
    ),
    g(
        "bridge.latency_seconds",
        "lookout_bridge_latency_seconds",
        "Per direction: seconds from sending the token to seeing it on the other side.",
    ),
    g(
        "bridge.appservice_ping_ok",
        "lookout_bridge_appservice_ping_ok",
        "1 when the homeserver's appservice ping reached the bridge, else 0.",
    ),
    g(
        "bridge.appservice_ping_seconds",
        "lookout_bridge_appservice_ping_seconds",
        "Duration of the homeserver's appservice ping.",
    ),
];

/// The entry of a sample name, if it is a known one.
pub fn lookup(sample: &str) -> Option<&'static Entry> {
    SAMPLES.iter().find(|e| e.sample == sample)
}

/// Makes a dotted sample name a valid metric name: `command.depth` → `lookout_command_depth`.
pub fn generic_name(sample: &str) -> String {
    let mut out = String::from("lookout_");
    out.extend(sample.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for e in SAMPLES {
            assert!(e.metric.starts_with("lookout_"), "{}", e.metric);
            assert_eq!(
                e.kind == Type::Counter,
                e.metric.ends_with("_total"),
                "{}: counters and only counters end in _total",
                e.metric
            );
            assert!(
                !e.metric.contains("unix"),
                "{}: use _timestamp_seconds",
                e.metric
            );
            assert!(e.help.ends_with('.'), "{}", e.help);
        }
        let mut names: Vec<_> = SAMPLES.iter().map(|e| e.metric).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            SAMPLES.len(),
            "two samples share a metric name"
        );
    }

    #[test]
    fn docs_list_every_sample_metric() {
        let doc = include_str!("../../../docs/metrics.md");
        for e in SAMPLES {
            let row = format!("| `{}` | ", e.metric);
            assert!(
                doc.contains(&row),
                "docs/metrics.md has no row for {}",
                e.metric
            );
        }
    }
}
