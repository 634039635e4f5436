//! RawSocket as the router accepts it: the handshake after the magic octet, then frames (messages,
//! PING, PONG, reserved types, lengths over the limit), each message decoded as the session would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{Serializer, codec};
use switchboard_transport::{BoxedIo, Transport, rawsocket};
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    switchboard_fuzz::runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let data = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&data).await;
            let _ = client.shutdown().await;
            // Keep the client end open until the server is done, reading what it answers.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
        });
        let io: BoxedIo = Box::new(server);
        if let Ok(mut transport) = rawsocket::accept(io, 1 << 16, &Serializer::ALL).await {
            let serializer = transport.serializer();
            while let Ok(Some(message)) = transport.recv().await {
                let _ = codec::decode(serializer, &message);
            }
            transport.close().await;
        }
        let _ = writer.await;
    });
});
