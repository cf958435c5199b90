//! A TCP forwarder between a test's PostgreSQL client and the server (127.0.0.1 only) that
//! can cut a connection at a chosen moment: before a statement reaches the server, or after
//! the server has committed it but before the client hears the answer.
//!
//! It reads the PostgreSQL wire protocol just enough to find statements: the client's first
//! message (the startup packet) has no type byte, every later one does, and so does every
//! message of the server. A statement is recognised by a marker in its `Parse` (`P`) or
//! simple `Query` (`Q`) message, so arm a cut before the statement is first prepared on a
//! connection (sqlx caches prepared statements per connection). Connect with
//! `sslmode=disable`: an `SSLRequest` would add an unframed answer byte.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// When to cut the connection that sends a statement containing the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Before the statement reaches the server: nothing of it runs.
    Before,
    /// Once the server says it is done with the statement (`ReadyForQuery`: committed, for a
    /// statement outside a transaction), before the client hears it.
    AfterCommit,
}

#[derive(Default)]
struct Plan {
    armed: Option<(String, Cut)>,
}

/// A running forwarder; dropped with its runtime.
pub struct Proxy {
    pub addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    cuts: Arc<AtomicUsize>,
    cut: Arc<Notify>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<any port>` to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        assert!(
            target.ip().is_loopback(),
            "the proxy forwards to 127.0.0.1 only"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let cuts = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(Notify::new());
        let (p, c, n) = (Arc::clone(&plan), Arc::clone(&cuts), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(forward(
                    client,
                    server,
                    Arc::clone(&p),
                    Arc::clone(&c),
                    Arc::clone(&n),
                ));
            }
        });
        Proxy {
            addr,
            plan,
            cuts,
            cut,
        }
    }

    /// `url` pointed at the proxy, with `sslmode=disable`.
    pub fn url(&self, url: &str) -> String {
        let scheme_end = url.find("://").unwrap() + 3;
        let rest = &url[scheme_end..];
        let host_start = rest.rfind('@').map_or(0, |at| at + 1);
        let host_end = rest[host_start..]
            .find(['/', '?'])
            .map_or(rest.len(), |i| host_start + i);
        let mut out = format!(
            "{}{}{}{}",
            &url[..scheme_end],
            &rest[..host_start],
            self.addr,
            &rest[host_end..]
        );
        out.push_str(if out.contains('?') { "&" } else { "?" });
        out.push_str("sslmode=disable");
        out
    }

    /// Cuts the next connection that sends a statement containing `marker`, at `cut`.
    pub fn arm(&self, marker: &str, cut: Cut) {
        self.plan.lock().unwrap().armed = Some((marker.to_owned(), cut));
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Waits until a connection was cut.
    pub async fn wait_cut(&self) {
        loop {
            let notified = self.cut.notified();
            if self.cuts() > 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The `127.0.0.1:port` of a PostgreSQL URL.
pub fn target_of(url: &str) -> SocketAddr {
    let rest = &url[url.find("://").unwrap() + 3..];
    let host_start = rest.rfind('@').map_or(0, |at| at + 1);
    let host_end = rest[host_start..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| host_start + i);
    let host = &rest[host_start..host_end];
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.replace("localhost", "127.0.0.1").parse().unwrap()
}

async fn read_message(stream: &mut tokio::net::tcp::OwnedReadHalf, typed: bool) -> Option<Vec<u8>> {
    let mut head = vec![0u8; if typed { 5 } else { 4 }];
    stream.read_exact(&mut head).await.ok()?;
    let len_at = usize::from(typed);
    let len = u32::from_be_bytes(head[len_at..len_at + 4].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    stream.read_exact(&mut body).await.ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

async fn forward(
    client: TcpStream,
    server: TcpStream,
    plan: Arc<Mutex<Plan>>,
    cuts: Arc<AtomicUsize>,
    notify: Arc<Notify>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    // Set once this connection sent the marked statement, to cut after its answer.
    let pending_cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(Notify::new());
    let up = {
        let (plan, pending_cut, stop) = (plan, Arc::clone(&pending_cut), Arc::clone(&stop));
        let (cuts, notify) = (Arc::clone(&cuts), Arc::clone(&notify));
        async move {
            let mut typed = false;
            while let Some(message) = read_message(&mut client_rx, typed).await {
                if typed && matches!(message[0], b'P' | b'Q') {
                    let mut plan = plan.lock().unwrap();
                    let hit = plan.armed.as_ref().is_some_and(|(marker, _)| {
                        message
                            .windows(marker.len())
                            .any(|w| w == marker.as_bytes())
                    });
                    if hit {
                        let (_, cut) = plan.armed.take().unwrap();
                        match cut {
                            Cut::Before => {
                                cuts.fetch_add(1, Ordering::SeqCst);
                                notify.notify_waiters();
                                stop.notify_one();
                                return;
                            }
                            Cut::AfterCommit => pending_cut.store(true, Ordering::SeqCst),
                        }
                    }
                }
                // The startup packet is the one message without a type byte.
                typed = true;
                if server_tx.write_all(&message).await.is_err() {
                    break;
                }
            }
            stop.notify_one();
        }
    };
    let down = {
        let stop = Arc::clone(&stop);
        async move {
            // The marked statement's `CommandComplete` was seen (a prepare's own
            // `ReadyForQuery` comes before it: the statement has not run yet then).
            let mut completed = false;
            while let Some(message) = read_message(&mut server_rx, true).await {
                if pending_cut.load(Ordering::SeqCst) && message[0] == b'C' {
                    completed = true;
                }
                if completed && message[0] == b'Z' {
                    // The statement is done (committed) on the server; the client never
                    // hears it.
                    cuts.fetch_add(1, Ordering::SeqCst);
                    notify.notify_waiters();
                    break;
                }
                if client_tx.write_all(&message).await.is_err() {
                    break;
                }
            }
            stop.notify_one();
        }
    };
    let stopped = Arc::clone(&stop);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = stopped.notified() => {}
    }
}
