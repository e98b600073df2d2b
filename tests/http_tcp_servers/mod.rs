//! Local servers for the `http` and `tcp` probe tests: real sockets on free loopback ports,
//! with scripted timing (answer, stall before headers, stall mid-body, close mid-body, …).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// A server task; aborted on drop.
pub struct Server {
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Request heads received so far.
    pub requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A plain HTTP/1.1 server scripted by path (see [`respond`]).
    pub async fn http() -> Server {
        Self::start(|stream, requests| Box::pin(serve_http(stream, requests))).await
    }

    /// The same server behind TLS with this certificate and PKCS#8 key.
    pub async fn https(cert: Vec<u8>, key: Vec<u8>) -> Server {
        lookout::http::install_crypto_provider();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key).into(),
            )
            .expect("TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start(move |stream, requests| {
            let acceptor = acceptor.clone();
            Box::pin(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_http(tls, requests).await;
                }
            })
        })
        .await
    }

    /// A raw TCP server: `handler` gets each accepted connection.
    pub async fn start<F>(handler: F) -> Server
    where
        F: Fn(
                TcpStream,
                Arc<Mutex<Vec<String>>>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send
            + Sync
            + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, r) = (accepted.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handler(stream, r.clone()));
            }
        });
        Server {
            port,
            accepted,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Reads one request head; `None` at end of stream.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Waits until the peer closes (a stalled server holds the connection open).
pub async fn hold<S: AsyncRead + Unpin>(s: &mut S) {
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// Serves requests on one connection until the script says to stop.
async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    requests: Arc<Mutex<Vec<String>>>,
) {
    while let Some(head) = read_head(&mut s).await {
        requests.lock().unwrap().push(head.clone());
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let path = path.split('?').next().unwrap_or("/");
        if !respond(&mut s, path).await {
            return;
        }
    }
}

async fn answer<S: AsyncWrite + Unpin>(s: &mut S, status: &str, body: &str) -> bool {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).await.is_ok() && s.flush().await.is_ok()
}

/// The script. Returns whether the connection may serve another request.
///
/// - `/ok`: 200 `{"status":"ok","n":3}`
/// - `/degraded`: 200 `{"status":"degraded","n":3}`
/// - `/500`: 500 with a body
/// - `/slow`: the `/ok` answer after 700 ms
/// - `/stall-headers`: reads the request, never answers
/// - `/stall-body`: headers announcing 1000 bytes, 10 bytes, then nothing
/// - `/close-mid-body`: headers announcing 1000 bytes, 10 bytes, then closes
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, path: &str) -> bool {
    const OK: &str = r#"{"status":"ok","n":3}"#;
    match path {
        "/ok" => answer(s, "200 OK", OK).await,
        "/degraded" => answer(s, "200 OK", r#"{"status":"degraded","n":3}"#).await,
        "/500" => answer(s, "500 Internal Server Error", "database is down").await,
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(700)).await;
            answer(s, "200 OK", OK).await
        }
        "/stall-headers" => {
            hold(s).await;
            false
        }
        "/stall-body" | "/close-mid-body" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
            if s.write_all(head.as_bytes()).await.is_err() || s.flush().await.is_err() {
                return false;
            }
            if path == "/stall-body" {
                hold(s).await;
            } else {
                let _ = s.shutdown().await;
            }
            false
        }
        _ => answer(s, "404 Not Found", "no such path").await,
    }
}

/// A listener whose accept queue is full, so a further connection attempt hangs in SYN-SENT
/// (the kernel drops SYNs while the queue is full). Keep the returned value alive.
pub struct FullBacklog {
    pub port: u16,
    _listener: tokio::net::TcpListener,
    _fillers: Vec<TcpStream>,
}

impl FullBacklog {
    pub async fn new() -> FullBacklog {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(
                Duration::from_millis(300),
                TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                Ok(Ok(s)) => fillers.push(s),
                Ok(Err(e)) => panic!("filling the accept queue failed: {e}"),
                Err(_) => {
                    return FullBacklog {
                        port,
                        _listener: listener,
                        _fillers: fillers,
                    };
                }
            }
        }
        panic!("the accept queue of a backlog-0 listener never filled; connects do not stall");
    }
}

/// Asserts a run ended within `limit`, naming what took too long.
pub fn within(started: Instant, limit: Duration, what: &str) -> Duration {
    let took = started.elapsed();
    assert!(took <= limit, "{what} took {took:?}, more than {limit:?}");
    took
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port_now() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}
