use super::*;

const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
tun0\t0000080A\t0101A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
";

const IPV6_ROUTE: &str = "\
20010db8000000000000000000000000 20 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

fn exp(dest: &str, gw: Option<&str>, dev: Option<&str>) -> Expected {
    let gateway: Option<IpAddr> = gw.map(|g| g.parse().unwrap());
    Expected {
        dest: Prefix::parse(dest, gateway.is_some_and(|g| g.is_ipv6())).unwrap(),
        gateway,
        device: dev.map(str::to_string),
    }
}

#[test]
fn ipv4_table_parses_in_host_byte_order() {
    let r = parse_ipv4(ROUTE).unwrap();
    let shown: Vec<String> = r.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        shown,
        [
            "default via 192.168.1.1 dev eth0",
            "192.168.1.0/24 dev eth0",
            "10.8.0.0/16 via 192.168.1.1 dev tun0"
        ]
    );
}

#[test]
fn ipv6_table_parses_and_marks_housekeeping_routes() {
    let r = parse_ipv6(IPV6_ROUTE).unwrap();
    assert_eq!(r.len(), 7);
    assert_eq!(r[0].to_string(), "2001:db8::/32 via fe80::1 dev eth0");
    assert_eq!(r[2].to_string(), "::/0 via fe80::1 dev eth0");
    let kept: Vec<String> = r
        .iter()
        .filter(|r| !r.is_housekeeping())
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        kept,
        [
            "2001:db8::/32 via fe80::1 dev eth0",
            "fe80::/64 dev eth0",
            "::/0 via fe80::1 dev eth0",
            "::/0 dev lo"
        ]
    );
}

#[test]
fn malformed_tables_are_errors_not_panics() {
    for bad in [
        "header\neth0 zz 0 0 0 0 0 0\n",
        "header\neth0 00000000\n",
        "header\neth0\t00000000\t00000000\t0001\t0\t0\t0\t00FF00FF\n",
    ] {
        assert!(parse_ipv4(bad).is_err(), "{bad:?}");
    }
    for bad in [
        "abc 40 x x x x x x x eth0",
        "00 ff 00 00 00 00 00 00 00 eth0",
    ] {
        assert!(parse_ipv6(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_ipv4("only a header\n").unwrap(), vec![]);
}

#[test]
fn prefixes_parse_default_bare_hosts_and_clear_host_bits() {
    let cases: &[(&str, bool, &str)] = &[
        ("default", false, "default"),
        ("default", true, "::/0"),
        ("10.8.0.0/16", false, "10.8.0.0/16"),
        ("10.8.3.4/16", false, "10.8.0.0/16"),
        ("192.0.2.7", false, "192.0.2.7/32"),
        ("2001:db8::1/32", false, "2001:db8::/32"),
        ("0.0.0.0/0", false, "default"),
    ];
    for (input, v6, shown) in cases {
        assert_eq!(
            Prefix::parse(input, *v6).unwrap().to_string(),
            *shown,
            "{input}"
        );
    }
    for bad in ["10.8.0.0/33", "eth0", "10.8.0.0/x", "::/129", ""] {
        assert!(Prefix::parse(bad, false).is_err(), "{bad}");
    }
}

#[test]
fn comparison_names_missing_and_changed_routes() {
    let present = parse_ipv4(ROUTE).unwrap();
    let cases: Vec<(Vec<Expected>, &str)> = vec![
        (
            vec![exp("10.8.0.0/16", Some("192.168.1.1"), Some("tun0"))],
            "all 1 expected route present (configured): 10.8.0.0/16 via 192.168.1.1 dev tun0",
        ),
        (
            vec![exp("10.9.0.0/16", Some("192.168.1.1"), Some("eth0"))],
            "missing: 10.9.0.0/16 via 192.168.1.1 dev eth0",
        ),
        (
            vec![exp("default", Some("192.168.1.254"), None)],
            "changed: default now via 192.168.1.1 (was 192.168.1.254)",
        ),
        (
            vec![exp("10.8.0.0/16", None, Some("wg0"))],
            "changed: 10.8.0.0/16 now dev tun0 (was dev wg0)",
        ),
        (
            vec![exp("192.168.1.0/24", Some("192.168.1.9"), Some("eth0"))],
            "changed: 192.168.1.0/24 now direct (was 192.168.1.9)",
        ),
        (
            vec![
                exp("10.9.0.0/16", None, None),
                exp("172.16.0.0/12", Some("192.168.1.1"), None),
                exp("default", Some("192.168.1.254"), Some("eth1")),
            ],
            "missing: 10.9.0.0/16, 172.16.0.0/12 via 192.168.1.1; \
             changed: default now via 192.168.1.1 dev eth0 (was 192.168.1.254 dev eth1)",
        ),
    ];
    for (expected, message) in cases {
        let c = compare(&expected, &present);
        assert_eq!(c.message("configured"), message);
    }
}

#[test]
fn snapshot_skips_housekeeping_ignored_devices_and_destinations() {
    let mut routes = parse_ipv4(ROUTE).unwrap();
    routes.extend(parse_ipv6(IPV6_ROUTE).unwrap());
    let ignore_dest = [Prefix::parse("10.0.0.0/8", false).unwrap()];
    let e = snapshot_expectations(&routes, &["lo".to_string()], &ignore_dest);
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "default via 192.168.1.1 dev eth0",
            "192.168.1.0/24 dev eth0",
            "2001:db8::/32 via fe80::1 dev eth0",
            "fe80::/64 dev eth0",
            "::/0 via fe80::1 dev eth0"
        ]
    );
    let c = compare(&e, &routes);
    assert!(c.missing.is_empty() && c.changed.is_empty());
    assert!(c.message("the routes present at start").starts_with(
        "all 5 expected routes present (the routes present at start): default via 192.168.1.1"
    ));
}
