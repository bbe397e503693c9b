//! An idle connection holds no read or write buffer, also after back-to-back large messages
//! (whose buffers a connection keeps while they keep coming): measured with a counting global
//! allocator, both sides in this process. Its own test binary, with one test, so that no other
//! test's allocations are counted.

mod common;

use bunctl_ipc::{EventBus, IpcClient, IpcMessage, IpcResponse, IpcServer, serve};
use common::{fresh_endpoint, within};
use futures::{SinkExt, StreamExt};

#[path = "common/alloc.rs"]
mod alloc;

use alloc::heap;

const MIB: usize = 1 << 20;

/// What the connection pair may still hold: far below one kept 1 MiB buffer. A Windows named
/// pipe keeps buffers of its own in the transport (about 110 KiB after this exchange, under
/// Wine); a Unix socket none.
const BOUND: isize = if cfg!(windows) { 256 * 1024 } else { 64 * 1024 };

fn big(n: usize) -> String {
    "y".repeat(n)
}

/// Echoes a `Start`'s config back, as large as it came.
async fn echo(message: IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Start { config, .. } => IpcResponse::Success { message: config },
        other => IpcResponse::Success { message: format!("{other:?}") },
    }
}

/// Heap now, less `before`, once it is below `bound` or 10 s of letting the other tasks run
/// have passed (the server's task gives its buffers back on its own, right after its last
/// write).
async fn held_since(before: usize, bound: isize) -> isize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let held = heap() as isize - before as isize;
        if held < bound || std::time::Instant::now() > deadline {
            return held;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_connection_and_its_client_hold_no_large_buffer_once_back_to_back_large_messages_end()
 {
    let endpoint = fresh_endpoint();
    let server = IpcServer::bind(endpoint.path()).await.expect("bind");
    tokio::spawn(serve(server, EventBus::new(), echo));
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("warm-up", client.request(&IpcMessage::List)).await.expect("list");
    let before = heap();

    // Pipelined both ways: the client's batch and the server's replies run into each other's
    // kept buffers, then everything stops.
    let (conn, held) = client.into_connection();
    assert!(held.is_empty());
    let (mut rx, mut tx) = conn.split();
    let sending = async {
        let request = IpcMessage::Start { name: "a".into(), config: big(MIB) };
        for _ in 0..4 {
            tx.feed(&request).await.expect("feed");
        }
        SinkExt::<&IpcMessage>::flush(&mut tx).await.expect("flush");
    };
    let receiving = async {
        for _ in 0..4 {
            let reply = rx.next().await.expect("a reply").expect("ok");
            assert!(matches!(reply, IpcResponse::Success { message } if message.len() == MIB));
        }
    };
    within("the exchange", async { tokio::join!(sending, receiving) }).await;
    // The server's side gives its buffers back once it waits for input; the client's read half
    // once a read would wait, its write half at the batch's flush. A 1 MiB buffer kept anywhere
    // would show here.
    let held = held_since(before, BOUND).await;
    assert!(held < BOUND, "{held} bytes held after the exchange");
}
