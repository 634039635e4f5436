//! The sending loop of every request/reply scenario (`rpc` callers, `pubsub` publishers, `echo`
//! connections, `fanout` publishers, and their NATS counterparts): keep `in_flight` requests
//! outstanding on one connection until the window ends, then wait for the outstanding answers
//! until the drain deadline.
//!
//! What a request is and how an answer is checked belongs to each scenario's [`Requester`]. The
//! loop is generic over it and over its [`Wire`], so the hot path has no dynamic dispatch and
//! allocates nothing of its own.

use anyhow::anyhow;
use bytes::Bytes;
use tokio::time::Instant;

use crate::conn::Wire;
use crate::measure::Window;

/// What one sending connection of a scenario does with its requests and their answers.
pub trait Requester {
    /// The kind of connection: a [`crate::conn::Conn`], or a NATS one.
    type Wire: Wire;

    /// The connection requests go out and answers come in on.
    fn wire(&mut self) -> &mut Self::Wire;

    /// Requests sent and not answered yet.
    fn outstanding(&self) -> usize;

    /// The next request, already counted as outstanding; the loop feeds it to the connection.
    fn request(&mut self, window: &Window) -> anyhow::Result<Bytes>;

    /// Handles one incoming message: true when it settled an outstanding request, which makes
    /// room for the next one. An error ends the loop.
    fn answer(&mut self, msg: Bytes, window: &Window) -> anyhow::Result<bool>;
}

/// Keeps `in_flight` requests outstanding until the window ends, then waits for the outstanding
/// answers. It works in batches: every message already buffered is handled, the settled requests
/// are replaced (while the window lasts), then one flush. Returns once nothing is outstanding
/// after the window, at the drain deadline (what is still outstanding then stays so), or at the
/// first failure.
pub async fn keep_in_flight<R: Requester>(
    r: &mut R,
    in_flight: usize,
    window: &Window,
) -> anyhow::Result<()> {
    for _ in 0..in_flight {
        send_next(r, window).await?;
    }
    r.wire().flush().await?;
    while let Some(first) = next_incoming(r, window).await {
        let mut settled = 0usize;
        let mut incoming = first;
        loop {
            let msg = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
            if r.answer(msg, window)? {
                settled += 1;
            }
            match r.wire().try_recv() {
                Some(next) => incoming = next,
                None => break,
            }
        }
        if Instant::now() < window.end {
            for _ in 0..settled {
                send_next(r, window).await?;
            }
        }
        r.wire().flush().await?;
    }
    Ok(())
}

/// Queues the next request (no flush).
async fn send_next<R: Requester>(r: &mut R, window: &Window) -> anyhow::Result<()> {
    let msg = r.request(window)?;
    r.wire().feed(msg).await?;
    Ok(())
}

/// The next incoming message, waiting as long as [`Window::wait_until`] says; `None` when the
/// loop is done.
async fn next_incoming<R: Requester>(
    r: &mut R,
    window: &Window,
) -> Option<anyhow::Result<Option<Bytes>>> {
    loop {
        let wake = window.wait_until(Instant::now(), r.outstanding())?;
        match tokio::time::timeout_at(wake, r.wire().recv()).await {
            Ok(incoming) => return Some(incoming),
            Err(_) if wake == window.drain_deadline => return None,
            // The window ended: no new requests from now on, and with none outstanding the loop
            // is done.
            Err(_) => {}
        }
    }
}
