use super::runner::*;
use super::*;

#[test]
fn run_parts_names_and_leftovers() {
    for ok in ["ntp", "rfc3442-classless-routes", "50_routes"] {
        assert!(run_parts_name(ok), "{ok}");
    }
    for bad in ["routes.sh", "a b", ""] {
        assert!(!run_parts_name(bad), "{bad}");
    }
    for left in ["x.dpkg-old", "x~", ".hidden", "x.bak"] {
        assert!(leftover_name(left), "{left}");
    }
}

#[test]
fn ip_is_reported_where_the_path_is_unknowable_but_not_on_known_full_paths() {
    // These rely on the host having `ip` (iproute2) and `sh` installed, as every test host does.
    let m = check_program("ip", Runner::Ifupdown, None, false, "post-up").expect("ip is reported");
    assert!(m.starts_with("post-up calls `ip` by bare name;"), "{m}");
    assert!(m.ends_with("use /sbin/ip"), "{m}");
    assert_eq!(
        check_program("ip", Runner::Dhclient, None, false, "this hook"),
        None
    );
    assert_eq!(
        check_program("sh", Runner::Ifupdown, None, false, "up"),
        None
    );
    let own = (vec!["/nonexistent".to_string()], false);
    let m = check_program("sh", Runner::NetworkManager, Some(&own), false, "this hook").unwrap();
    assert!(
        m.contains("which is not on the PATH this script sets itself (/nonexistent); use /bin/sh"),
        "{m}"
    );
    let m = check_program(
        "no-such-tool-lk",
        Runner::Dhclient,
        None,
        false,
        "this hook",
    )
    .unwrap();
    assert!(m.contains("is not installed in any of"), "{m}");
    assert_eq!(
        check_program("no-such-tool-lk", Runner::Dhclient, None, true, "this hook"),
        None
    );
}

#[test]
fn alert_message_summarises() {
    assert_eq!(alert_message(&[]), None);
    let f = Finding {
        file: "/etc/network/interfaces".into(),
        line: 7,
        message: "x".into(),
    };
    assert_eq!(
        alert_message(&[f]).unwrap(),
        "network configuration lint: 1 finding: /etc/network/interfaces:7: x (run `lookout lint net` for details)"
    );
}
