use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `W YYYY/MM/DD HH:MM:SS` for unix seconds (the inverse of `days_from_civil`).
fn dhclient_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let weekday = (days + 4).rem_euclid(7);
    format!(
        "{weekday} {y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn dhclient_block(
    iface: &str,
    addr: &str,
    now: i64,
    renew: i64,
    rebind: i64,
    expire: i64,
) -> String {
    format!(
        "lease {{\n  interface \"{iface}\";\n  fixed-address {addr};\n  option subnet-mask 255.255.255.0;\n  option dhcp-lease-time 43200;\n  renew {};\n  rebind {};\n  expire {};\n}}\n",
        dhclient_time(now + renew),
        dhclient_time(now + rebind),
        dhclient_time(now + expire)
    )
}

const H: i64 = 3600;
const M: i64 = 60;

#[test]
fn dhclient_times_round_trip_and_reject_garbage() {
    assert_eq!(
        parse_dhclient_time("4 2024/01/04 03:04:05").unwrap(),
        Some(1_704_337_445.0)
    );
    assert_eq!(dhclient_time(1_704_337_445), "4 2024/01/04 03:04:05");
    assert_eq!(
        parse_dhclient_time("epoch 1704337445").unwrap(),
        Some(1_704_337_445.0)
    );
    assert_eq!(parse_dhclient_time("never").unwrap(), None);
    for bad in [
        "4 2024/13/04 03:04:05",
        "4 2024/01/04",
        "epoch x",
        "soon",
        "4 2024/01/04 25:00:00",
    ] {
        assert!(parse_dhclient_time(bad).is_err(), "{bad}");
    }
}

#[test]
fn leases_from_each_client_are_judged_relative_to_now() {
    let now = 1_900_000_000_i64;
    let nowf = now as f64;
    let networkd_new = "# This is private data. Do not parse.\nADDRESS=10.0.2.15\nNETMASK=255.255.255.0\nROUTER=10.0.2.2\nT1=12h\nT2=21h\nLIFETIME=1d\n";
    let networkd_old = "# This is private data. Do not parse.\nADDRESS=10.0.2.16\nT1=1800\nT2=3150\nLIFETIME=3600\n";
    let nm_internal = "# This is private data. Do not parse.\nADDRESS=10.0.3.5\n";
    let two_blocks = format!(
        "{}{}",
        dhclient_block("eth0", "192.168.1.9", now, -20 * H, -10 * H, -5 * H),
        dhclient_block("eth0", "192.168.1.10", now, 6 * H - M, 10 * H, 12 * H - M)
    );
    let epoch = format!(
        "lease {{\n  interface \"eth2\";\n  fixed-address 172.16.0.4;\n  renew epoch {}; # comment\n  rebind epoch {};\n  expire epoch {};\n}}\n",
        now + H,
        now + 2 * H,
        now + 3 * H
    );
    // (file name, text, written, level, message)
    let cases: Vec<(&str, String, i64, u8, &str)> = vec![
        (
            "dhclient.eth0.leases",
            two_blocks,
            now,
            0,
            "eth0 uses DHCP (lease 192.168.1.10, renews in 5h59m, expires in 11h59m)",
        ),
        (
            "dhclient.eth1.leases",
            dhclient_block("eth1", "192.168.7.3", now, -H, 3 * H, 5 * H),
            now,
            1,
            "eth1: DHCP lease 192.168.7.3 is past its renewal time by 1h00m and not renewed; expires in 5h00m",
        ),
        (
            "dhclient.leases",
            dhclient_block("eth0", "192.168.1.10", now, -6 * H, -2 * H, 10 * M),
            now,
            2,
            "eth0: DHCP lease 192.168.1.10 expires in 10m00s; renewal overdue by 6h00m: check that the DHCP server answers",
        ),
        (
            "dhclient.leases",
            dhclient_block("eth0", "192.168.1.10", now, -12 * H, -6 * H, -5 * M),
            now,
            2,
            "eth0: DHCP lease 192.168.1.10 expired 5m00s ago and was not renewed: the address and the routes that came with it may be gone",
        ),
        (
            "dhclient.eth2.leases",
            epoch,
            now,
            0,
            "eth2 uses DHCP (lease 172.16.0.4, renews in 1h00m, expires in 3h00m)",
        ),
        (
            "2",
            networkd_new.to_string(),
            now - H,
            0,
            "ens3 uses DHCP (lease 10.0.2.15, renews in 11h00m, expires in 23h00m)",
        ),
        (
            "7",
            networkd_old.to_string(),
            now - 50 * M,
            2,
            "ifindex 7: DHCP lease 10.0.2.16 expires in 10m00s; renewal overdue by 20m00s: check that the DHCP server answers",
        ),
        (
            "internal-3f7c0b7e-3c7e-4e55-9a49-0a1b2c3d4e5f-wlan0.lease",
            nm_internal.to_string(),
            now - 10 * H,
            0,
            "wlan0 uses DHCP (lease 10.0.3.5, no lease times recorded by NetworkManager's internal client)",
        ),
        (
            "dhclient-3f7c0b7e-3c7e-4e55-9a49-0a1b2c3d4e5f-eth5.lease",
            dhclient_block("eth5", "10.5.0.2", now, 30 * M, H, 2 * H),
            now,
            0,
            "eth5 uses DHCP (lease 10.5.0.2, renews in 30m00s, expires in 2h00m)",
        ),
    ];
    let names: BTreeMap<u32, String> = [(2, "ens3".to_string())].into();
    for (name, text, written, level, message) in cases {
        let file = super::super::LeaseFile {
            path: PathBuf::from("/leases").join(name),
            text,
            written: written as f64,
        };
        let leases =
            super::super::leases_of(&file, &names).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(leases.len(), 1, "{name}: {leases:?}");
        let v = judge(&leases[0], nowf, 1800.0);
        assert_eq!((v.level, v.message.as_str()), (level, message), "{name}");
    }
}

#[test]
fn broken_lease_files_are_errors_not_panics() {
    for bad in [
        "lease {\n interface \"eth0\";\n renew 4 2024/99/04 03:04:05;\n}\n",
        "lease {\n interface \"eth0\";\n",
        "garbage {\n",
        "lease {\n fixed-address 10.0.0.1;\n}\n",
    ] {
        assert!(parse_dhclient(bad, None).is_err(), "{bad:?}");
    }
    assert!(
        parse_key_value(
            "ADDRESS=1.2.3.4\nLIFETIME=forever-ish\n",
            "eth0",
            0.0,
            Client::Networkd
        )
        .is_err()
    );
    assert_eq!(
        parse_key_value("NOTHING=here\n", "eth0", 0.0, Client::Networkd).unwrap(),
        None
    );
}

#[test]
fn dhcpv6_blocks_are_skipped() {
    let text = "default-duid \"\\000\\001\";\nlease6 {\n  interface \"eth0\";\n  ia-na 1a2b3c4d {\n    starts 1700000000;\n    iaaddr 2001:db8::5 {\n      max-life 7200;\n    }\n  }\n}\n";
    assert_eq!(parse_dhclient(text, None).unwrap(), vec![]);
}

#[test]
fn finding_nothing_is_ok_only_under_the_default_paths_and_says_where_it_looked() {
    use crate::model::Status;
    use crate::probe::dhcp_lease::{DhcpLeaseConfig, Scan, evaluate};
    let names = BTreeMap::new();
    let defaults = DhcpLeaseConfig::default();
    let all_missing = Scan {
        missing: defaults.paths(),
        ..Scan::default()
    };
    let obs = evaluate(&defaults, &all_missing, &names, 0.0);
    assert_eq!(obs.status, Status::Ok);
    assert_eq!(
        obs.message,
        "no DHCP leases found (none of /var/lib/dhcp, /var/lib/dhclient, /run/systemd/netif/leases, /var/lib/NetworkManager exists)"
    );
    let some = Scan {
        missing: defaults.paths()[1..].to_vec(),
        ..Scan::default()
    };
    let obs = evaluate(&defaults, &some, &names, 0.0);
    assert_eq!(
        (obs.status, obs.message.as_str()),
        (Status::Ok, "no DHCP leases found in /var/lib/dhcp")
    );

    // Named paths: the same emptiness is unknown.
    let named: DhcpLeaseConfig =
        toml::from_str("paths = [\"/var/lib/dhcp\", \"/srv/leases\"]").unwrap();
    let obs = evaluate(
        &named,
        &Scan {
            missing: vec![PathBuf::from("/srv/leases")],
            ..Scan::default()
        },
        &names,
        0.0,
    );
    assert_eq!(
        (obs.status, obs.message.as_str()),
        (
            Status::Unknown,
            "/srv/leases (named in paths) does not exist"
        )
    );
    let obs = evaluate(&named, &Scan::default(), &names, 0.0);
    assert_eq!(
        (obs.status, obs.message.as_str()),
        (
            Status::Unknown,
            "no DHCP leases found in /var/lib/dhcp, /srv/leases (named in paths)"
        )
    );
}

#[test]
fn the_worst_lease_comes_first_in_the_message() {
    let now = 1_900_000_000_i64;
    let files: Vec<super::super::LeaseFile> = [
        (
            "dhclient.eth0.leases",
            dhclient_block("eth0", "10.0.0.2", now, 6 * H, 10 * H, 12 * H),
        ),
        (
            "dhclient.wlan0.leases",
            dhclient_block("wlan0", "10.0.1.2", now, -6 * H, -2 * H, 10 * M),
        ),
    ]
    .into_iter()
    .map(|(name, text)| super::super::LeaseFile {
        path: PathBuf::from(name),
        text,
        written: now as f64,
    })
    .collect();
    let scan = super::super::Scan {
        files,
        ..Default::default()
    };
    let obs = super::super::evaluate(
        &super::super::DhcpLeaseConfig::default(),
        &scan,
        &BTreeMap::new(),
        now as f64,
    );
    assert_eq!(obs.status, crate::model::Status::Critical);
    assert!(
        obs.message
            .starts_with("wlan0: DHCP lease 10.0.1.2 expires in"),
        "{}",
        obs.message
    );
    assert!(obs.message.contains("; eth0 uses DHCP"), "{}", obs.message);
}
