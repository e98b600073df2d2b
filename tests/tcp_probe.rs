//! The `tcp` probe against real loopback servers: a banner that matches, one that does not, a
//! request/answer exchange, a refused port, a server that never speaks and a connect that never
//! completes. Every run ends within its timeout + 1 s.

mod http_tcp_servers;

use http_tcp_servers::{FullBacklog, Server, free_port_now, hold, within};
use lookout::model::{Labels, Observation, Status};
use lookout::probe::Probe;
use lookout::probe::tcp::{TcpConfig, TcpProbe};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(3); // timeout + 1 s

async fn run(port: u16, extra: &str) -> Observation {
    let fields = format!("host = \"127.0.0.1\"\nport = {port}\n{extra}");
    let config: TcpConfig =
        toml::from_str(&fields).unwrap_or_else(|e| panic!("bad test config {fields}: {e}"));
    let started = Instant::now();
    let obs = TcpProbe::new(config, TIMEOUT).run().await;
    let took = within(started, LIMIT, &fields);
    eprintln!("{extra}: {took:?}: {} {}", obs.status.as_str(), obs.message);
    obs
}

/// A server that greets every connection with `banner`, then closes or holds it.
async fn banner_server(banner: &'static str, then_close: bool) -> Server {
    Server::start(move |mut s, _| {
        Box::pin(async move {
            let _ = s.write_all(banner.as_bytes()).await;
            if then_close {
                let _ = s.shutdown().await;
            } else {
                hold(&mut s).await;
            }
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_banner_is_ok_with_samples() {
    let server = banner_server("SSH-2.0-OpenSSH_9.2\r\n", false).await;
    let obs = run(server.port, "expect = \"SSH-2.0-\"").await;
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);
    assert!(
        obs.message
            .starts_with(&format!("connected to 127.0.0.1:{} in ", server.port))
            && obs.message.ends_with("; the answer contains \"SSH-2.0-\""),
        "{}",
        obs.message
    );
    let none = Labels::new();
    let connect = obs
        .sample("tcp.connect_seconds", &none)
        .expect("connect sample");
    let total = obs
        .sample("tcp.duration_seconds", &none)
        .expect("duration sample");
    assert!(
        connect > 0.0 && connect <= total && total < 1.0,
        "{connect} {total}"
    );

    let plain = run(server.port, "").await;
    assert_eq!(
        plain.status,
        Status::Ok,
        "connecting alone is enough: {}",
        plain.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_then_expect_an_answer() {
    let server = Server::start(|s, _| {
        Box::pin(async move {
            let mut lines = BufReader::new(s);
            let mut line = String::new();
            while matches!(lines.read_line(&mut line).await, Ok(n) if n > 0) {
                let reply: &[u8] = if line == "PING\r\n" {
                    b"+PONG\r\n"
                } else {
                    b"-ERR\r\n"
                };
                if lines.get_mut().write_all(reply).await.is_err() {
                    return;
                }
                line.clear();
            }
        })
    })
    .await;
    let ok = run(server.port, "send = 'PING\\r\\n'\nexpect = \"+PONG\"").await;
    assert_eq!(ok.status, Status::Ok, "{}", ok.message);
    let wrong = run(server.port, "send = \"HELLO\\r\\n\"\nexpect = \"+PONG\"").await;
    assert_eq!(wrong.status, Status::Critical, "{}", wrong.message);
    assert!(
        wrong
            .message
            .starts_with("expected \"+PONG\", got \"-ERR\\r\\n\" (nothing more within 2s)"),
        "{}",
        wrong.message
    );
}

/// Every failure says its finding first and the address after it: that is what a page's
/// first line shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_banner_is_critical_and_shows_what_arrived() {
    let server = banner_server("HTTP/1.1 400 Bad Request\r\n\r\n", true).await;
    let obs = run(server.port, "expect = \"SSH-2.0-\"").await;
    assert_eq!(obs.status, Status::Critical, "{}", obs.message);
    assert!(
        obs.message.starts_with(
            "expected \"SSH-2.0-\", got \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\" (then the server closed the connection)"
        ),
        "{}",
        obs.message
    );

    let long = banner_server(
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        true,
    )
    .await;
    let obs = run(long.port, "expect = \"SSH\"").await;
    assert!(
        obs.message.contains("xxxx…\""),
        "long answers are cut: {}",
        obs.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_critical_with_the_os_error() {
    let port = free_port_now();
    let obs = run(port, "").await;
    assert_eq!(obs.status, Status::Critical, "{}", obs.message);
    assert!(
        obs.message.starts_with(&format!(
            "cannot connect to 127.0.0.1:{port}: Connection refused"
        )),
        "{}",
        obs.message
    );
    assert!(obs.sample("tcp.duration_seconds", &Labels::new()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_end_within_the_timeout_and_say_where() {
    let silent = banner_server("", false).await;
    let obs = run(silent.port, "expect = \"220 \"").await;
    assert_eq!(obs.status, Status::Unknown, "{}", obs.message);
    assert!(
        obs.message
            .starts_with("timed out after 2s (waiting for banner)"),
        "{}",
        obs.message
    );

    let full = FullBacklog::new().await;
    let obs = run(full.port, "").await;
    assert_eq!(obs.status, Status::Unknown, "{}", obs.message);
    assert!(
        obs.message.starts_with(&format!(
            "timed out after 2s (connecting) (127.0.0.1:{})",
            full.port
        )),
        "{}",
        obs.message
    );
}
