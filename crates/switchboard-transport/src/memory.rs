//! The in-memory transport: two ends of a pair of bounded channels carrying whole encoded messages,
//! for sessions that live in the router's own process (hosted components, bridges, the local side
//! of links, the router's own caller).
//!
//! It implements [`Transport`] like the socket transports, so an in-process session runs exactly
//! the code a socket session runs: the same handshake, authorization, meta events, outbox and
//! clean-up. Messages stay encoded (in the serializer chosen at [`pair`]), which keeps that single
//! code path; the cost is one encode and one decode per message on each side, with no system call
//! and no framing.
//!
//! Back-pressure is the socket's: [`Transport::feed`] waits while the other end's buffer is full,
//! exactly as a write waits for a full socket buffer, so a reader that stops reading ends up a slow
//! consumer on the router side rather than growing a queue.

use bytes::Bytes;
use switchboard_proto::Serializer;
use tokio::sync::mpsc;

use crate::{Transport, TransportError};

/// How many messages each direction buffers by default: about what a socket's kernel buffers
/// hold for small messages.
pub const DEFAULT_CAPACITY_MESSAGES: usize = 256;

/// One end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    serializer: Serializer,
    /// `None` once this end closed: the other end then reads the end of the stream.
    outgoing: Option<mpsc::Sender<Bytes>>,
    incoming: mpsc::Receiver<Bytes>,
}

/// Two connected ends speaking `serializer`, each direction buffering `capacity` messages.
pub fn pair(serializer: Serializer, capacity: usize) -> (MemoryTransport, MemoryTransport) {
    let (a_tx, b_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, a_rx) = mpsc::channel(capacity.max(1));
    (
        MemoryTransport {
            serializer,
            outgoing: Some(a_tx),
            incoming: a_rx,
        },
        MemoryTransport {
            serializer,
            outgoing: Some(b_tx),
            incoming: b_rx,
        },
    )
}

fn closed() -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the other end of the in-memory transport is closed",
    ))
}

impl Transport for MemoryTransport {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        None
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        // `mpsc::Receiver::recv` is cancel-safe, as the trait requires.
        Ok(self.incoming.recv().await)
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        match &self.outgoing {
            Some(tx) => tx.send(msg).await.map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // Every fed message is already in the other end's buffer.
        Ok(())
    }

    async fn close(&mut self) {
        self.outgoing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_cross_in_order_and_close_ends_the_other_side() {
        let (mut a, mut b) = pair(Serializer::MsgPack, 4);
        a.feed(Bytes::from_static(b"one")).await.expect("feed");
        a.feed(Bytes::from_static(b"two")).await.expect("feed");
        a.flush().await.expect("flush");
        assert_eq!(b.recv().await.expect("recv").as_deref(), Some(&b"one"[..]));
        assert_eq!(b.recv().await.expect("recv").as_deref(), Some(&b"two"[..]));
        a.close().await;
        assert_eq!(b.recv().await.expect("recv"), None);
        assert!(a.feed(Bytes::from_static(b"late")).await.is_err());
    }

    #[tokio::test]
    async fn a_full_buffer_makes_the_writer_wait_until_the_reader_reads() {
        let (mut a, mut b) = pair(Serializer::Json, 1);
        a.feed(Bytes::from_static(b"1")).await.expect("feed");
        let mut second = Box::pin(a.feed(Bytes::from_static(b"2")));
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "the writer waits while the buffer is full"
        );
        assert!(b.recv().await.expect("recv").is_some());
        second
            .await
            .expect("the write completes once there is room");
        assert_eq!(b.recv().await.expect("recv").as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn dropping_one_end_fails_the_other_ends_writes() {
        let (mut a, b) = pair(Serializer::Cbor, 2);
        drop(b);
        assert!(a.feed(Bytes::from_static(b"x")).await.is_err());
    }
}
