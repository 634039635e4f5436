//! `switchboard-echo`: a bare WebSocket and RawSocket server with no WAMP in it, the reference for
//! what the transport alone allows (`switchboard-load echo` and `switchboard-load fanout`).
//!
//! It accepts connections the way the router's universal listener does: the first octet 0x7F
//! starts a RawSocket handshake, anything else is HTTP served by hyper, where a WebSocket upgrade
//! (on any path, with a `wamp.2.*` subprotocol or none) goes through the same
//! `switchboard-transport` code (yawc underneath) the router uses. Only what happens to a message
//! differs:
//!
//! - default (echo): every message goes back to its sender, in order, batched like the router
//!   batches (drain what is buffered, one flush);
//! - `--fanout`: every message goes to every other connection and back to its sender (the
//!   sender's acknowledgement), through bounded per-connection outboxes with the router's
//!   slow-consumer policy (a full outbox closes that connection).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures::FutureExt as _;
use http_body_util::Empty;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_proto::Serializer;
use switchboard_transport::websocket::{self, WebSocketSettings};
use switchboard_transport::{Transport, rawsocket};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bare WebSocket/RawSocket echo and fan-out server (no WAMP), the transport reference for
/// switchboard-load.
#[derive(Parser)]
#[command(name = "switchboard-echo", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Fan-out hub instead of echo: each message goes to all other connections and back to its
    /// sender.
    #[arg(long)]
    fanout: bool,
    /// Messages a connection's outbox holds in fan-out mode before the connection is closed as a
    /// slow consumer (the router's limit is 4096 too).
    #[arg(long, default_value_t = 4096)]
    outbox: usize,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = switchboard_transport::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_size: usize,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// How long a new connection has for its first octet and handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        builder.worker_threads(n.max(1));
    }
    let result = builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| rt.block_on(serve(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What to do with messages.
#[derive(Clone)]
enum Mode {
    Echo,
    Fanout(Arc<Hub>),
}

async fn serve(cli: Cli) -> Result<(), String> {
    let socket = if cli.listen.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(|e| e.to_string())?;
    socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
    socket
        .bind(cli.listen)
        .map_err(|e| format!("binding {}: {e}", cli.listen))?;
    let listener = socket.listen(1024).map_err(|e| e.to_string())?;
    let mode = if cli.fanout {
        Mode::Fanout(Arc::new(Hub::new(cli.outbox)))
    } else {
        Mode::Echo
    };
    let settings = Arc::new(WebSocketSettings::new(cli.max_message_size, false));
    eprintln!(
        "switchboard-echo: {} on ws://{}/ and rs://{} (pid {})",
        if cli.fanout { "fan-out hub" } else { "echo" },
        cli.listen,
        cli.listen,
        std::process::id()
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, mode.clone(), settings.clone(), cli.max_message_size));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One connection: RawSocket if the first octet is 0x7F, else HTTP with WebSocket upgrades.
async fn connection(
    stream: TcpStream,
    mode: Mode,
    settings: Arc<WebSocketSettings>,
    max_message_size: usize,
) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == rawsocket::MAGIC {
        let mut stream = stream;
        // rawsocket::accept expects the magic octet already consumed.
        if stream.read_exact(&mut first).await.is_err() {
            return;
        }
        let accepted = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            rawsocket::accept(Box::new(stream), max_message_size, &Serializer::ALL),
        )
        .await;
        if let Ok(Ok(t)) = accepted {
            run(t, mode).await;
        }
        return;
    }
    let service = service_fn(move |req| {
        let mode = mode.clone();
        let settings = settings.clone();
        async move { Ok::<_, Infallible>(upgrade(req, mode, &settings)) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// Answers an HTTP request: a WebSocket upgrade starts the connection's message loop.
fn upgrade(
    mut req: Request<hyper::body::Incoming>,
    mode: Mode,
    settings: &WebSocketSettings,
) -> Response<Empty<Bytes>> {
    let status = |code: StatusCode| {
        let mut r = Response::new(Empty::new());
        *r.status_mut() = code;
        r
    };
    let is_upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return status(StatusCode::UPGRADE_REQUIRED);
    }
    match websocket::accept(&mut req, &Serializer::ALL, settings) {
        Ok(accepted) => {
            tokio::spawn(async move {
                if let Ok(t) = accepted.transport.await {
                    run(t, mode).await;
                }
            });
            accepted.response
        }
        Err(_) => status(StatusCode::BAD_REQUEST),
    }
}

async fn run<T: Transport>(t: T, mode: Mode) {
    match mode {
        Mode::Echo => echo(t).await,
        Mode::Fanout(hub) => fanout(t, &hub).await,
    }
}

/// Sends every message back, batching: everything already buffered is fed before one flush.
async fn echo<T: Transport>(mut t: T) {
    while let Ok(Some(m)) = t.recv().await {
        if t.feed(m).await.is_err() {
            break;
        }
        // recv is cancel-safe, so polling it once and dropping it loses nothing.
        let mut healthy = true;
        while let Some(Ok(Some(m))) = t.recv().now_or_never() {
            if t.feed(m).await.is_err() {
                healthy = false;
                break;
            }
        }
        if !healthy || t.flush().await.is_err() {
            break;
        }
    }
    t.close().await;
}

/// A fan-out member: its outbox and the token that closes it when the outbox overflows.
struct Member {
    tx: mpsc::Sender<Bytes>,
    kick: CancellationToken,
}

/// All connections of the fan-out hub.
struct Hub {
    members: RwLock<HashMap<u64, Member>>,
    next_id: AtomicU64,
    outbox: usize,
}

impl Hub {
    fn new(outbox: usize) -> Self {
        Self {
            members: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            outbox: outbox.max(1),
        }
    }

    /// Adds a connection; returns its id, outbox receiver, own sender and kick token.
    fn join(
        &self,
    ) -> (
        u64,
        mpsc::Receiver<Bytes>,
        mpsc::Sender<Bytes>,
        CancellationToken,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.outbox);
        let kick = CancellationToken::new();
        self.members
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Member {
                    tx: tx.clone(),
                    kick: kick.clone(),
                },
            );
        (id, rx, tx, kick)
    }

    fn leave(&self, id: u64) {
        self.members
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Queues `msg` for every member but `from`; a member whose outbox is full is kicked, as the
    /// router closes a slow consumer, so that no one waits on it.
    fn broadcast(&self, from: u64, msg: &Bytes) {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        for (id, m) in members.iter() {
            if *id != from && m.tx.try_send(msg.clone()).is_err() {
                m.kick.cancel();
            }
        }
    }
}

/// One fan-out connection: reads and broadcasts, and writes its outbox in batches.
async fn fanout<T: Transport>(mut t: T, hub: &Hub) {
    let (id, mut rx, own, kick) = hub.join();
    loop {
        tokio::select! {
            _ = kick.cancelled() => break,
            incoming = t.recv() => match incoming {
                Ok(Some(m)) => {
                    hub.broadcast(id, &m);
                    // The echo to the sender comes after everyone else's copy was queued, as
                    // PUBLISHED comes after the EVENTs in the router.
                    if own.try_send(m).is_err() {
                        break;
                    }
                }
                _ => break,
            },
            Some(m) = rx.recv() => {
                let mut healthy = t.feed(m).await.is_ok();
                while healthy && let Ok(m) = rx.try_recv() {
                    healthy = t.feed(m).await.is_ok();
                }
                if !healthy || t.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    hub.leave(id);
    t.close().await;
}
