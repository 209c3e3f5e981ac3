//! [`FrameCodec`]: a `tokio_util` decoder that turns a byte stream into frame
//! heads and body chunks without ever holding a whole body.
//!
//! A head is yielded once its prefix and JSON header are buffered; the body
//! that follows is handed out in chunks of at most [`MAX_CHUNK`] as it
//! arrives. The codec remembers how much body is left, so the next prefix is
//! only looked for after the body is complete.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::frame::{FrameError, Kind, PREFIX_LEN, parse_prefix};

/// Largest body chunk the decoder yields at once.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// A frame's head: its kind, its JSON header and how much body follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The frame kind.
    pub kind: Kind,
    /// The raw JSON header.
    pub header: Bytes,
    /// Body bytes that follow (delivered as [`Inbound::Chunk`]s).
    pub body_len: u64,
}

/// One step of the decoded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// The head of a new frame.
    Head(Head),
    /// The next piece of the current frame's body.
    Chunk(Bytes),
}

/// Decoder state: only how much of the current body is still to come.
#[derive(Debug, Default)]
pub struct FrameCodec {
    body_remaining: u64,
}

impl FrameCodec {
    /// True while the bytes on the wire belong to a body.
    pub fn in_body(&self) -> bool {
        self.body_remaining > 0
    }

    /// Body bytes still to come for the current frame.
    pub fn body_remaining(&self) -> u64 {
        self.body_remaining
    }

    /// Records `n` body bytes taken from the stream outside [`decode`]
    /// (read straight into a caller's buffer).
    ///
    /// [`decode`]: Decoder::decode
    pub fn consume_body(&mut self, n: u64) {
        debug_assert!(n <= self.body_remaining);
        self.body_remaining -= n.min(self.body_remaining);
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        if self.body_remaining > 0 {
            if src.is_empty() {
                return Ok(None);
            }
            let n = (src.len() as u64)
                .min(self.body_remaining)
                .min(MAX_CHUNK as u64) as usize;
            self.body_remaining -= n as u64;
            return Ok(Some(Inbound::Chunk(src.split_to(n).freeze())));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let Some(prefix) = parse_prefix(src)? else {
            return Ok(None);
        };
        let total = PREFIX_LEN + prefix.header_len as usize;
        if src.len() < total {
            // The cap was checked by parse_prefix, so this reservation is bounded.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(PREFIX_LEN);
        let header = src.split_to(prefix.header_len as usize).freeze();
        self.body_remaining = prefix.body_len;
        Ok(Some(Inbound::Head(Head {
            kind: prefix.kind,
            header,
            body_len: prefix.body_len,
        })))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() && self.body_remaining == 0 => Ok(None),
            None => Err(FrameError::UnexpectedEof),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The matrix of tokio-util's length_delimited tests, for this codec.
    use super::*;
    use crate::wire::frame::{MAX_HEADER_LEN, encode_head};

    fn frame(kind: Kind, header: &[u8], body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        encode_head(kind, header, body.len() as u64, &mut b);
        b.extend_from_slice(body);
        b
    }

    fn drain(codec: &mut FrameCodec, buf: &mut BytesMut) -> Vec<Inbound> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).unwrap() {
            out.push(item);
        }
        out
    }

    fn collect_body(items: &[Inbound]) -> Vec<u8> {
        items
            .iter()
            .filter_map(|i| match i {
                Inbound::Chunk(c) => Some(c.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn one_frame_in_one_read() {
        let mut codec = FrameCodec::default();
        let mut buf = frame(Kind::Request, br#"{"op":"ls"}"#, b"");
        let items = drain(&mut codec, &mut buf);
        assert_eq!(items.len(), 1);
        match &items[0] {
            Inbound::Head(h) => {
                assert_eq!(&h.header[..], br#"{"op":"ls"}"#);
                assert_eq!(h.body_len, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn many_frames_in_one_read() {
        let mut codec = FrameCodec::default();
        let mut buf = frame(Kind::Request, b"{\"a\":1}", b"hello");
        buf.extend_from_slice(&frame(Kind::Ok, b"{}", b""));
        buf.extend_from_slice(&frame(Kind::Error, b"{\"b\":2}", b"xy"));
        let items = drain(&mut codec, &mut buf);
        let heads: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Inbound::Head(h) => Some(h.kind),
                _ => None,
            })
            .collect();
        assert_eq!(heads, vec![Kind::Request, Kind::Ok, Kind::Error]);
        assert_eq!(collect_body(&items), b"helloxy");
    }

    #[test]
    fn one_frame_over_many_reads() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let whole = frame(Kind::Partial, br#"{"x":"y"}"#, &body);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for byte in whole.iter() {
            buf.extend_from_slice(&[*byte]);
            items.extend(drain(&mut codec, &mut buf));
        }
        assert!(matches!(&items[0], Inbound::Head(h) if h.body_len == 10_000));
        assert_eq!(collect_body(&items), body);
        assert!(!codec.in_body());
    }

    #[test]
    fn large_body_is_chunked_not_buffered_whole() {
        let body = vec![7u8; MAX_CHUNK * 2 + 10];
        let mut buf = frame(Kind::Request, b"{}", &body);
        let mut codec = FrameCodec::default();
        let items = drain(&mut codec, &mut buf);
        assert!(items.iter().all(|i| match i {
            Inbound::Chunk(c) => c.len() <= MAX_CHUNK,
            Inbound::Head(_) => true,
        }));
        assert_eq!(items.len(), 4);
        assert_eq!(collect_body(&items).len(), body.len());
    }

    #[test]
    fn incomplete_header_and_body_wait() {
        let whole = frame(Kind::Request, br#"{"op":"stat"}"#, b"abc");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&whole[..PREFIX_LEN + 3]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let mut buf = BytesMut::from(&whole[..whole.len() - 2]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Inbound::Head(_))
        ));
        assert!(
            matches!(codec.decode(&mut buf).unwrap(), Some(Inbound::Chunk(c)) if &c[..] == b"a")
        );
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(codec.body_remaining(), 2);
    }

    #[test]
    fn eof_mid_header_and_mid_body_are_errors() {
        let whole = frame(Kind::Request, b"{}", b"abcdef");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&whole[..5]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::UnexpectedEof)
        ));

        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&whole[..whole.len() - 3]);
        assert!(matches!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Inbound::Head(_))
        ));
        assert!(matches!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Inbound::Chunk(_))
        ));
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::UnexpectedEof)
        ));
    }

    #[test]
    fn clean_eof_between_frames() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversize_length_refused_before_reserving() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&crate::wire::frame::MAGIC);
        buf.extend_from_slice(&[1, 1]);
        buf.extend_from_slice(&(MAX_HEADER_LEN + 1).to_be_bytes());
        let cap_before = buf.capacity();
        let mut codec = FrameCodec::default();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::HeaderLength(_))
        ));
        assert_eq!(buf.capacity(), cap_before);
    }

    #[test]
    fn garbage_is_refused() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::BadMagic)));
    }
}
