//! WebSocket frames after the upgrade, as the router's side reads them: masking, fragments,
//! control frames, close codes, permessage-deflate (with a 64 KiB message limit, so an inflation
//! bomb must be stopped by the limit), each message decoded as the session would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{Serializer, codec};
use switchboard_transport::Transport;
use switchboard_transport::websocket::{WebSocketSettings, server_over};
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the serializer and whether permessage-deflate was agreed.
    let Some((&choice, frames)) = data.split_first() else {
        return;
    };
    let serializer = Serializer::ALL[usize::from(choice % 3)];
    let deflate = choice & 0x80 != 0;
    switchboard_fuzz::runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let frames = frames.to_vec();
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&frames).await;
            let _ = client.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
        });
        let settings = WebSocketSettings::new(64 * 1024, deflate);
        let extensions = deflate.then_some("permessage-deflate");
        if let Ok(mut transport) = server_over(server, serializer, extensions, &settings) {
            while let Ok(Some(message)) = transport.recv().await {
                let _ = codec::decode(serializer, &message);
            }
            transport.close().await;
        }
        let _ = writer.await;
    });
});
