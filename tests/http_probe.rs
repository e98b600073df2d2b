//! The `http` probe against real local servers that answer normally, slowly, with errors, stall
//! before the headers, stall in the body, close mid-body, or never finish connecting; over TLS
//! with a short-lived self-signed certificate. Every run ends within its timeout + 1 s with a
//! message that says where it stalled.

mod http_tcp_servers;

use http_tcp_servers::{FullBacklog, Server, within};
use lookout::model::{Labels, Observation, Status};
use lookout::probe::Probe;
use lookout::probe::http::{HttpConfig, HttpProbe};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(3); // timeout + 1 s

fn probe(toml_fields: &str) -> HttpProbe {
    let config: HttpConfig = toml::from_str(toml_fields)
        .unwrap_or_else(|e| panic!("bad test config {toml_fields}: {e}"));
    HttpProbe::new(config, TIMEOUT)
}

async fn run(p: &HttpProbe, what: &str) -> Observation {
    let started = Instant::now();
    let obs = p.run().await;
    let took = within(started, LIMIT, what);
    eprintln!("{what}: {took:?}: {} {}", obs.status.as_str(), obs.message);
    obs
}

fn sample(obs: &Observation, name: &str) -> Option<f64> {
    obs.sample(name, &Labels::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_answer_is_ok_with_samples_and_reuses_the_connection() {
    let server = Server::http().await;
    let p = probe(&format!(
        "url = \"{}\"\nbody_contains = \"ok\"\njson = [{{ pointer = \"/status\", equals = \"ok\" }}, {{ pointer = \"/n\", equals = 3 }}]",
        server.url("/ok")
    ));
    for i in 0..3 {
        let obs = run(&p, "a normal answer").await;
        assert_eq!(obs.status, Status::Ok, "run {i}: {}", obs.message);
        assert!(
            obs.message.starts_with(&format!(
                "GET http://127.0.0.1:{}/ok: HTTP 200 OK in ",
                server.port
            )),
            "{}",
            obs.message
        );
        assert_eq!(sample(&obs, "http.status_code"), Some(200.0));
        assert_eq!(sample(&obs, "http.body_bytes"), Some(21.0));
        let d = sample(&obs, "http.duration_seconds").expect("duration sample");
        assert!(d > 0.0 && d < 2.0, "duration {d}");
        assert_eq!(sample(&obs, "http.cert_expires_in_seconds"), None);
        // Probe runs are an interval apart; the connection goes back to the pool in the
        // background right after the body, so a run that follows at once may race it.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        server.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "three runs share one persistent connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_end_within_the_timeout_and_say_where() {
    let server = Server::http().await;
    let full = FullBacklog::new().await;
    let cases = [
        (
            server.url("/stall-headers"),
            "timed out after 2s (no response headers)",
        ),
        (
            server.url("/stall-body"),
            "timed out after 2s (headers received, body stalled); HTTP 200 OK, 10 B of the body arrived",
        ),
        (
            format!("http://127.0.0.1:{}/", full.port),
            "timed out after 2s (connecting)",
        ),
        // A TLS handshake the server never answers is part of connecting too.
        (
            server.url("/").replace("http:", "https:"),
            "timed out after 2s (connecting)",
        ),
    ];
    for (url, want) in cases {
        let p = probe(&format!("url = \"{url}\""));
        let started = Instant::now();
        let obs = run(&p, &url).await;
        assert_eq!(obs.status, Status::Unknown, "{url}: {}", obs.message);
        // The finding first (what a page's first line shows), the request after it.
        assert!(
            obs.message.starts_with(want),
            "{url}: {:?} does not start with {want:?}",
            obs.message
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{url} gave up before its deadline"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_is_critical_and_says_so() {
    let server = Server::http().await;
    let p = probe(&format!("url = \"{}\"", server.url("/close-mid-body")));
    let obs = run(&p, "close mid-body").await;
    assert_eq!(obs.status, Status::Critical, "{}", obs.message);
    assert!(
        obs.message
            .contains("HTTP 200 OK, but the body broke off after 10 B of the 1000 B announced"),
        "{}",
        obs.message
    );
    assert_eq!(sample(&obs, "http.status_code"), Some(200.0));
    assert_eq!(sample(&obs, "http.body_bytes"), Some(10.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_slowness_and_body_conditions_set_the_status() {
    let server = Server::http().await;
    let refused = http_tcp_servers::free_port_now();
    let cases: Vec<(String, Status, &str)> = vec![
        (
            format!("url = \"{}\"", server.url("/500")),
            Status::Critical,
            "HTTP 500 Internal Server Error, expected 2xx; the body starts \"database is down\" (GET http://127.0.0.1:",
        ),
        (
            format!("url = \"{}\"\nexpected_status = [500]", server.url("/500")),
            Status::Ok,
            "HTTP 500 Internal Server Error",
        ),
        (
            format!(
                "url = \"{}\"\nwarning_latency = \"300ms\"\ncritical_latency = \"1500ms\"",
                server.url("/slow")
            ),
            Status::Warning,
            "slower than the warning latency 300ms",
        ),
        (
            format!(
                "url = \"{}\"\nwarning_latency = \"100ms\"\ncritical_latency = \"300ms\"",
                server.url("/slow")
            ),
            Status::Critical,
            "slower than the critical latency 300ms",
        ),
        (
            format!(
                "url = \"{}\"\nbody_contains = \"\\\"ok\\\"\"",
                server.url("/degraded")
            ),
            Status::Critical,
            "the body does not contain \"\\\"ok\\\"\"",
        ),
        (
            format!(
                "url = \"{}\"\njson = [{{ pointer = \"/status\", equals = \"ok\" }}]",
                server.url("/degraded")
            ),
            Status::Critical,
            "JSON /status is \"degraded\", expected \"ok\"",
        ),
        (
            format!(
                "url = \"{}\"\njson = [{{ pointer = \"/checks/db\" }}]",
                server.url("/ok")
            ),
            Status::Critical,
            "JSON /checks/db is missing",
        ),
        (
            format!("url = \"http://127.0.0.1:{refused}/\""),
            Status::Critical,
            "cannot connect",
        ),
    ];
    for (config, status, want) in cases {
        let obs = run(&probe(&config), &config).await;
        assert_eq!(obs.status, status, "{config}: {}", obs.message);
        // A finding first (what a page's first line shows), the request after it.
        let placed = if status == Status::Ok {
            obs.message.contains(want)
        } else {
            obs.message.starts_with(want)
        };
        assert!(
            placed,
            "{config}: {:?} lacks {want:?} or not first",
            obs.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_and_query_strings_reach_the_server_but_never_a_message() {
    let server = Server::http().await;
    for path in ["/500?token=q-s3cret", "/stall-body?token=q-s3cret"] {
        let p = probe(&format!(
            "url = \"http://u:pw-s3cret@127.0.0.1:{}{path}\"\nmethod = \"POST\"\nheaders = {{ Authorization = \"Bearer h-s3cret\" }}\nbody = \"b-s3cret\"",
            server.port
        ));
        let obs = run(&p, path).await;
        assert!(
            !obs.message.contains("s3cret"),
            "a secret leaked: {}",
            obs.message
        );
        assert!(
            obs.message
                .contains(&format!("POST http://127.0.0.1:{}/", server.port)),
            "{}",
            obs.message
        );
    }
    let heads = server.requests.lock().unwrap().clone();
    assert!(
        heads.iter().all(|h| h
            .to_ascii_lowercase()
            .contains("authorization: bearer h-s3cret")
            && h.contains("token=q-s3cret")),
        "the server did not get the header and query: {heads:#?}"
    );
}

/// A self-signed certificate for 127.0.0.1 that expires in `minutes` minutes: (DER, PKCS#8 key).
fn certificate(minutes: i64) -> (Vec<u8>, Vec<u8>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("certificate params");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.der().to_vec(), key.serialize_der())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_expiry_is_measured_and_judged() {
    // 46 h 30 min: far from an hour boundary, so the message reads 1d22h however long the
    // test takes.
    let (cert, key) = certificate(46 * 60 + 30);
    let server = Server::https(cert, key).await;
    let url = format!("https://127.0.0.1:{}/ok", server.port);

    let insecure = probe(&format!("url = \"{url}\"\ntls_insecure = true"));
    for run_no in 0..2 {
        let obs = run(&insecure, "TLS with a certificate valid 46.5 more hours").await;
        assert_eq!(
            obs.status,
            Status::Critical,
            "run {run_no}: {}",
            obs.message
        );
        assert!(
            obs.message.contains("HTTP 200 OK")
                && obs.message.contains("the TLS certificate expires in 1d22h"),
            "run {run_no}: {}",
            obs.message
        );
        let left = sample(&obs, "http.cert_expires_in_seconds").expect("expiry sample");
        assert!(
            (46.5 * 3600.0 - 120.0..=46.5 * 3600.0).contains(&left),
            "run {run_no}: {left}s left"
        );
        tokio::time::sleep(Duration::from_secs(1)).await; // let the connection return to the pool
    }
    assert_eq!(
        server.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second run reused the TLS connection and still saw the certificate"
    );

    let relaxed = probe(&format!(
        "url = \"{url}\"\ntls_insecure = true\ncert_warning_within = \"1d\"\ncert_critical_within = \"12h\""
    ));
    let obs = run(&relaxed, "TLS with relaxed thresholds").await;
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);

    let strict = probe(&format!("url = \"{url}\""));
    let obs = run(&strict, "TLS with verification").await;
    assert_eq!(obs.status, Status::Critical, "{}", obs.message);
    assert!(
        obs.message.contains("cannot connect") && obs.message.contains("certificate"),
        "an untrusted certificate is named: {}",
        obs.message
    );
}
