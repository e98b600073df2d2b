//! A TCP proxy on a free loopback port, switchable at runtime between passing traffic through,
//! wedging it (the seed's failure: answer `HTTP/1.1 200 OK` headers and never send the body),
//! delaying every chunk the client sends, and refusing only the requests that contain a
//! pattern (the connection is closed on them, as a bridge restarting would).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Answer the next request's bytes with `200 OK` headers and nothing more; the connection
    /// is held until the mode changes, then closed.
    Wedge,
    /// Forward each request from the client after this delay (the first chunk after a pause of
    /// 200 ms or more is held).
    Delay(Duration),
    /// Close the connection on a chunk that contains this text (e.g. a request path); forward
    /// everything else.
    Refuse(&'static str),
}

/// A running proxy (its tasks live on the runtime it was started on).
pub struct Proxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Requests answered with headers only so far.
    pub wedged: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to 127.0.0.1:`upstream` in pass-through mode.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Pass);
        let wedged = Arc::new(AtomicUsize::new(0));
        let (m, w) = (mode.clone(), wedged.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, upstream, m.subscribe(), w.clone()));
            }
        });
        Proxy {
            port,
            mode,
            wedged,
            task,
        }
    }

    /// Switches mode; leaving `Wedge` closes the wedged connections (as a restart of the peer
    /// or a kernel timeout would), so the client retries.
    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HEADERS: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";

async fn connection(
    client: TcpStream,
    upstream: u16,
    mut mode: watch::Receiver<Mode>,
    wedged: Arc<AtomicUsize>,
) {
    let Ok(Ok(server)) = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", upstream)),
    )
    .await
    else {
        return;
    };
    let (mut sr, mut sw) = server.into_split();
    let (mut cr, cw) = client.into_split();
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    let back = tokio::spawn({
        let cw = cw.clone();
        async move {
            let mut b = vec![0u8; 64 * 1024];
            loop {
                match sr.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if cw.lock().await.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let idle = last.is_none_or(|l| l.elapsed() > Duration::from_millis(200));
        let m = *mode.borrow_and_update();
        match m {
            Mode::Pass => {}
            // Once per request (the first chunk after a pause), not once per chunk.
            Mode::Delay(d) if idle => tokio::time::sleep(d).await,
            Mode::Delay(_) => {}
            Mode::Refuse(pattern) => {
                if buf[..n]
                    .windows(pattern.len())
                    .any(|w| w == pattern.as_bytes())
                {
                    break;
                }
            }
            Mode::Wedge => {
                wedged.fetch_add(1, Ordering::SeqCst);
                back.abort();
                // Headers, then silence until the mode changes; then the connection closes.
                let _ = cw.lock().await.write_all(HEADERS).await;
                loop {
                    if *mode.borrow_and_update() != Mode::Wedge {
                        return;
                    }
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if sw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        last = Some(tokio::time::Instant::now());
    }
    back.abort();
}
