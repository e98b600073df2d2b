use super::*;

fn names(script: &str) -> Vec<(String, usize)> {
    command_words(script)
        .into_iter()
        .map(|w| (w.name, w.line))
        .collect()
}

fn w(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(n, l)| (n.to_string(), *l)).collect()
}

#[test]
fn command_words_of_common_hook_shapes() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        ("ip route add 10.8.0.0/16 via 192.168.1.1", &[("ip", 1)]),
        ("/sbin/ip route add 10.8.0.0/16 || true", &[]),
        (
            "ip link set eth0 up && logger up; sleep 1 | cat",
            &[("ip", 1), ("logger", 1), ("sleep", 1), ("cat", 1)],
        ),
        ("X=1 Y=\"a b\" ip addr >/dev/null 2>&1 &", &[("ip", 1)]),
        ("sudo -u root nice -n 5 env A=b ip a", &[("ip", 1)]),
        ("timeout 5 ping -c1 10.0.0.1", &[("ping", 1)]),
        ("exec wg-quick up wg0", &[("wg-quick", 1)]),
        (
            "GW=$(ip route show default | awk '{print $3}')",
            &[("ip", 1), ("awk", 1)],
        ),
        (
            "echo \"gw is $(ip route | head -1)\"",
            &[("ip", 1), ("head", 1)],
        ),
        ("for i in 1 2 3; do ping -c1 x; done", &[("ping", 1)]),
        (
            "if ip link show tun0 >/dev/null; then\n  ifup tun0\nelse logger no; fi",
            &[("ip", 1), ("ifup", 2), ("logger", 3)],
        ),
        (
            "case \"$2\" in\n  up) ip route add x ;;\n  down|pre-down) ip route del x ;;\nesac\nlogger done",
            &[("ip", 2), ("ip", 3), ("logger", 5)],
        ),
        (
            "add_routes() {\n  ip route add x\n}\nadd_routes\n",
            &[("ip", 2)],
        ),
        ("function up_all {\n  true\n}\nup_all", &[]),
        ("# ip route add x\necho hi # ip again", &[]),
        (
            "cat <<EOF\nip route add x\nEOF\nlogger ok",
            &[("cat", 1), ("logger", 4)],
        ),
        (
            "ip route add \\\n  10.0.0.0/8 via 1.2.3.4\nlogger x",
            &[("ip", 1), ("logger", 3)],
        ),
        ("command -v ip >/dev/null && ip a", &[("ip", 1)]),
        ("[ \"$IFACE\" = eth0 ] || exit 0", &[]),
        ("echo $((1 + 2)) > /tmp/x", &[]),
        ("$IP route add x; \"$CMD\" run", &[]),
        (
            "`hostname` ; (cd /tmp && make)",
            &[("hostname", 1), ("make", 1)],
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(names(script), w(expected), "{script:?}");
    }
}

#[test]
fn own_path_and_sourcing_are_noticed() {
    assert_eq!(
        own_path("#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:$PATH\nip a\n"),
        Some((vec!["/usr/sbin".to_string(), "/usr/bin".to_string()], true))
    );
    assert_eq!(
        own_path("PATH=\"/sbin:/bin\"\n"),
        Some((vec!["/sbin".to_string(), "/bin".to_string()], false))
    );
    assert_eq!(own_path("ip a\n"), None);
    assert!(sources_other_files(
        ". /lib/lsb/init-functions\nlog_action_msg hi\n"
    ));
    assert!(!sources_other_files("echo .\n"));
}
