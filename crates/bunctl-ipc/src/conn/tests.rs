use super::*;
use bytes::BytesMut;
use ipc_proto::{ClientCodec, IpcMessage, IpcResponse, Operation};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio_util::codec::Encoder;

type Client<S> = Connection<S, IpcResponse, IpcMessage>;
type Server<S> = Connection<S, IpcMessage, IpcResponse>;

fn frame_len(m: &IpcMessage) -> usize {
    serde_json::to_vec(m).expect("json").len() + 4
}

#[tokio::test]
async fn send_timeout_before_any_byte_withdraws_the_frame_and_keeps_the_connection() {
    let first = IpcMessage::Stop { name: "first".into() };
    // A pipe that holds exactly one frame: the second send cannot write a single byte.
    let (a, b) = duplex(frame_len(&first));
    let mut client: Client<_> = Connection::new(a);
    let mut server: Server<_> = Connection::new(b);
    client.set_timeout(Duration::from_millis(30));
    client.send(&first).await.expect("fits");
    let e = client.send(&IpcMessage::List).await.expect_err("pipe full");
    assert!(matches!(e, IpcError::Timeout { operation: Operation::Send, .. }), "{e}");
    assert!(!client.is_poisoned());

    assert_eq!(server.recv().await.expect("first"), first);
    let third = IpcMessage::Stop { name: "third".into() };
    client.send(&third).await.expect("usable again");
    // The withdrawn `List` never reached the wire.
    assert_eq!(server.recv().await.expect("third"), third);
}

#[tokio::test]
async fn send_timeout_mid_frame_poisons_and_nothing_more_is_written() {
    let (a, mut b) = duplex(16);
    let mut client: Client<_> = Connection::new(a);
    client.set_timeout(Duration::from_millis(30));
    let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(100) };
    assert!(client.send(&big).await.expect_err("too slow").is_timeout());
    assert!(client.is_poisoned());
    assert!(matches!(client.send(&IpcMessage::List).await, Err(IpcError::Poisoned)));
    let mut got = vec![0u8; 16];
    b.read_exact(&mut got).await.expect("the part that went out");
    drop(client);
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).await.expect("eof");
    assert!(rest.is_empty(), "nothing after the torn frame: {rest:?}");
}

#[tokio::test]
async fn idle_connection_keeps_no_large_buffers_after_a_large_message() {
    let (a, b) = duplex(1 << 16);
    let mut client: Client<_> = Connection::new(a);
    let mut server: Server<_> = Connection::new(b);
    let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(1 << 20) };
    let (sent, got) = tokio::join!(client.send(&big), server.recv());
    sent.expect("send");
    assert_eq!(got.expect("recv"), big);
    assert!(!client.writer.grew);
    assert!(client.writer.buf.capacity() <= IDLE_BUFFER_LIMIT, "writer kept a large buffer");
    server.reader.buf.reserve(1);
    assert!(server.reader.buf.capacity() <= IDLE_BUFFER_LIMIT, "{}", server.reader.buf.capacity());
}

#[tokio::test]
async fn back_to_back_large_frames_share_one_buffer_which_goes_once_input_stops() {
    let (a, mut b) = duplex(4 << 20);
    let mut server: Server<_> = Connection::new(a);
    let big = |c: char| IpcMessage::Start { name: c.into(), config: "y".repeat(1 << 20) };
    let mut wire = BytesMut::new();
    for c in ['a', 'b', 'c'] {
        ClientCodec::new().encode(&big(c), &mut wire).expect("encode");
    }
    b.write_all(&wire).await.expect("write");

    assert_eq!(server.recv().await.expect("a"), big('a'));
    // The next frame was there: read into the buffer the first one grew.
    assert!(server.reader.codec.holds_large_buffer(), "kept while frames keep arriving");
    let kept = server.reader.buf.as_ptr();
    assert_eq!(server.recv().await.expect("b"), big('b'));
    assert_eq!(server.reader.buf.as_ptr(), kept, "the third frame is read into it too");
    assert_eq!(server.recv().await.expect("c"), big('c'));
    // Nothing more has arrived: given back at once, before any further receive.
    assert!(!server.reader.codec.holds_large_buffer());
    server.reader.buf.reserve(1);
    assert!(server.reader.buf.capacity() <= IDLE_BUFFER_LIMIT, "idle holds no large buffer");

    // A frame that arrives while the reader waits is read into a buffer of its own again.
    let (sent, got) = tokio::join!(b.write_all(&wire[..wire.len() / 3]), server.recv());
    sent.expect("write");
    assert_eq!(got.expect("again"), big('a'));
    assert!(!server.reader.codec.holds_large_buffer());
}

#[tokio::test]
async fn a_batch_of_large_frames_is_encoded_into_one_buffer_given_back_by_its_flush() {
    use futures::SinkExt;
    let (a, mut b) = duplex(8 << 20);
    let mut client: Client<_> = Connection::new(a);
    let big = |c: char| IpcMessage::Start { name: c.into(), config: "y".repeat(1 << 20) };
    // `feed` flushes to make room for each next frame: the buffer stays.
    client.feed(&big('a')).await.expect("feed");
    client.feed(&big('b')).await.expect("feed");
    assert!(client.writer.grew, "kept between the frames of a batch");
    let kept = client.writer.buf.capacity();
    client.feed(&big('c')).await.expect("feed");
    assert!(client.writer.buf.capacity() <= kept + (1 << 20) + 64, "no new allocation");
    // The batch's own flush gives it back.
    SinkExt::<&IpcMessage>::flush(&mut client).await.expect("flush");
    assert!(!client.writer.grew);
    assert!(client.writer.buf.capacity() <= IDLE_BUFFER_LIMIT);
    let mut server: Server<_> = Connection::new(&mut b);
    for c in ['a', 'b', 'c'] {
        assert_eq!(server.recv().await.expect("frame"), big(c));
    }
}

#[tokio::test]
async fn many_frames_from_one_read_are_all_delivered_in_order() {
    let (a, b) = duplex(1 << 16);
    let mut client: Client<_> = Connection::new(a);
    let mut server: Server<_> = Connection::new(b);
    let msgs: Vec<_> = (0..500).map(|i| IpcMessage::Stop { name: i.to_string() }).collect();
    for m in &msgs {
        futures_util_feed(&mut client, m);
    }
    std::future::poll_fn(|cx| Pin::new(&mut client).poll_flush(cx)).await.expect("flush");
    for m in &msgs {
        assert_eq!(&server.recv().await.expect("recv"), m);
    }
}

fn futures_util_feed<S: AsyncWrite + Unpin>(c: &mut Client<S>, m: &IpcMessage) {
    Pin::new(c).start_send(m).expect("queue");
}

/// A frame of `payload` as the peer writes it.
fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).expect("small").to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn the_stream_goes_on_after_a_recoverable_error_and_ends_after_a_fatal_one() {
    // (A `RecvHalf` reads through the same `FrameReader::poll_next`.)
    use futures::StreamExt;
    let (a, mut peer) = duplex(1 << 16);
    let mut wire = raw_frame(b"not json");
    wire.extend(raw_frame(br#""List""#));
    wire.extend(u32::MAX.to_le_bytes()); // a header over the limit: the stream is lost
    wire.extend(raw_frame(br#""List""#));
    peer.write_all(&wire).await.expect("write");
    let server: Server<_> = Connection::new(a);
    let items: Vec<Result<IpcMessage>> = server.take(5).collect().await;
    let kinds: Vec<_> = items
        .iter()
        .map(|item| match item {
            Ok(m) => format!("{m:?}"),
            Err(e) => format!("recoverable: {}", e.is_recoverable()),
        })
        .collect();
    assert_eq!(kinds, ["recoverable: true", "List", "recoverable: false"]);
}

#[tokio::test]
async fn the_stream_ends_when_the_peer_closes() {
    use futures::StreamExt;
    let (a, mut peer) = duplex(1 << 16);
    peer.write_all(&raw_frame(br#""List""#)).await.expect("write");
    drop(peer);
    let mut server: Server<_> = Connection::new(a);
    assert_eq!(server.next().await.map(|m| m.expect("list")), Some(IpcMessage::List));
    assert!(server.next().await.is_none());
    assert!(server.next().await.is_none(), "stays ended");
}
