//! Arbitrary bytes, fed in arbitrary pieces, through the native frame
//! decoder and the classic header decoder: no panic, no chunk over the cap,
//! no body longer than declared, no buffer growth past one header.
#![no_main]

use bytes::BytesMut;
use ferry::wire::Inbound;
use ferry::wire::codec::{FrameCodec, MAX_CHUNK};
use ferry::wire::frame::{MAX_HEADER_LEN, PREFIX_LEN};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, so one input explores many splits.
    let Some((&step, rest)) = data.split_first() else { return };
    let step = usize::from(step.max(1));
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut declared = 0u64;
    let mut seen = 0u64;
    'outer: for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Inbound::Head(h))) => {
                    assert!(h.header.len() <= MAX_HEADER_LEN as usize);
                    assert_eq!(seen, declared, "a head before the last body ended");
                    declared = h.body_len;
                    seen = 0;
                }
                Ok(Some(Inbound::Chunk(c))) => {
                    assert!(!c.is_empty() && c.len() <= MAX_CHUNK);
                    seen += c.len() as u64;
                    assert!(seen <= declared);
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
        if !codec.in_body() {
            assert!(buf.len() < PREFIX_LEN + MAX_HEADER_LEN as usize + step);
        }
    }
    let _ = codec.decode_eof(&mut buf);

    let mut classic = BytesMut::from(rest);
    while let Ok(Some(_)) = ferry::wire::classic::decode_request(&mut classic) {}
});
