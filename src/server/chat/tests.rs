use super::*;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// A peer with `data` waiting, handing over at most `chunk` bytes per
/// read; notes how much room each read offered.
struct Peer {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    offered: Vec<usize>,
}

impl Peer {
    fn new(data: Vec<u8>, chunk: usize) -> Peer {
        Peer {
            data,
            pos: 0,
            chunk,
            offered: Vec::new(),
        }
    }
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let room = buf.remaining();
        self.offered.push(room);
        let n = room.min(self.chunk).min(self.data.len() - self.pos);
        let from = self.pos;
        buf.put_slice(&self.data[from..from + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

async fn read_all(lines: &mut Lines, peer: &mut Peer) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(item) = lines.next(peer).await.unwrap() {
        match item {
            LineItem::Line(l) => got.push(l),
            _ => panic!("only good lines were sent"),
        }
    }
    got
}

#[tokio::test]
async fn an_oversized_line_in_a_flood_is_refused_once_and_the_rest_kept() {
    let mut data = Vec::new();
    for i in 0..3000 {
        data.extend_from_slice(format!("before {i}\n").as_bytes());
    }
    // Longer than the limit and than the largest read: cut across reads.
    data.extend_from_slice(&vec![b'x'; 3 * READ_MAX]);
    data.extend_from_slice(b"\n");
    for i in 0..3000 {
        data.extend_from_slice(format!("after {i}\n").as_bytes());
    }
    let mut flood = Peer::new(data, usize::MAX);
    let mut lines = Lines::new(BytesMut::new(), 2000);
    let (mut got, mut refused) = (Vec::new(), 0);
    while let Some(item) = lines.next(&mut flood).await.unwrap() {
        match item {
            LineItem::Line(l) => got.push(l),
            LineItem::TooLong => refused += 1,
            LineItem::NotUtf8 => panic!("all of it was UTF-8"),
        }
    }
    assert_eq!(refused, 1);
    let want: Vec<String> = (0..3000)
        .map(|i| format!("before {i}"))
        .chain((0..3000).map(|i| format!("after {i}")))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn reads_grow_for_a_flood_and_shrink_for_a_trickle() {
    let sent: Vec<String> = (0..20_000).map(|i| format!("line {i}")).collect();
    let mut flood = Peer::new(
        sent.iter()
            .flat_map(|l| format!("{l}\r\n").into_bytes())
            .collect(),
        usize::MAX,
    );
    let mut lines = Lines::new(BytesMut::new(), 2000);
    assert_eq!(read_all(&mut lines, &mut flood).await, sent);
    // Started small, grew to the largest while every read came full.
    assert!(flood.offered[0] < READ_MAX, "{:?}", &flood.offered[..3]);
    let most = *flood.offered.iter().max().unwrap();
    assert!(most >= READ_MAX, "largest read offered {most}");
    assert!(flood.offered.len() < 20, "{} reads", flood.offered.len());
    // One short line per read from then on: back to small reads, and
    // the big buffer given back.
    let mut trickle = Peer::new(b"a\nb\nc\nd\ne\nf\ng\nh\n".to_vec(), 2);
    let got = read_all(&mut lines, &mut trickle).await;
    assert_eq!(got, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    let last = *trickle.offered.last().unwrap();
    assert!(last < 2 * READ_MIN, "still offering {last}");
    assert!(
        lines.buf.capacity() < 2 * READ_MIN,
        "{}",
        lines.buf.capacity()
    );
}
