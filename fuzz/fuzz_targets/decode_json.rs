//! The json message decoder, as every session runs it on what a peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::Serializer;

fuzz_target!(|data: &[u8]| {
    switchboard_fuzz::decode_and_reencode(Serializer::Json, data);
});
