//! Resource accounting under hostile load, with a counting allocator: a lying header costs no
//! memory, and a long soak with disconnects and an event flood leaves no descriptors or heap
//! behind. The tests here run one at a time (they measure the whole process).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bunctl_ipc::{IpcClient, IpcError, IpcMessage, IpcResponse, ServerOptions, SubscriptionType};
use common::*;
use futures::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[path = "common/alloc.rs"]
mod alloc;

use alloc::{baseline, heap, one_at_a_time, peak_above};

#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}
#[cfg(not(target_os = "linux"))]
fn open_fds() -> usize {
    0
}

#[test]
fn four_gib_header_is_rejected_before_any_allocation() {
    let _serial = one_at_a_time();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    rt.expect("runtime").block_on(async {
        let ep = fresh_endpoint();
        let _daemon = serve_echo(&ep, ServerOptions::new()).await;
        // Warm up: one ordinary connection, so lazily built runtime state is not counted.
        let mut warm = IpcClient::connect(ep.path()).await.expect("connect");
        warm.request(&IpcMessage::List).await.expect("warm-up");
        drop(warm);

        let mut hostile = raw_client(&ep).await;
        let base = baseline();
        hostile.get_mut().write_all(&u32::MAX.to_le_bytes()).await.expect("write");
        let reply = within("error reply", hostile.recv()).await.expect("reply");
        assert!(matches!(reply, IpcResponse::Error { .. }), "{reply:?}");
        assert!(matches!(within("close", hostile.recv()).await, Err(IpcError::Closed)));
        let growth = peak_above(base);
        assert!(growth < 64 * 1024, "heap grew by {growth} bytes for a 4 GiB claim");

        let mut good = IpcClient::connect(ep.path()).await.expect("connect");
        assert_eq!(
            good.request(&IpcMessage::List).await.expect("served"),
            echoed(&IpcMessage::List)
        );
    });
}

/// A small deterministic generator, so a failing soak can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// Under Wine (the Windows test run) the same load takes minutes; a lighter soak keeps the
// property checked there.
/// The soak is long by design; on a busy machine (or under Wine) it may take a while, so its
/// waits get a generous deadline of their own. A hang still fails the test.
async fn patiently<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(300), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

const CLIENTS: usize = if cfg!(windows) { 20 } else { 100 };
const REQUESTS: usize = if cfg!(windows) { 300 } else { 2000 };
const SUBSCRIBERS: usize = 10;

/// One requester: pipelines batches of requests, checks each reply is the right one in the
/// right order, and now and then drops its connection and reconnects.
async fn requester(path: std::path::PathBuf, id: usize) -> usize {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let mut replies = 0;
    let mut sent = 0;
    let (mut conn, _) = IpcClient::connect(&path).await.expect("connect").into_connection();
    while sent < REQUESTS {
        if rng.below(100) == 0 {
            // Leave, with or without a request in flight, and come back.
            if rng.below(2) == 0 {
                let _ = conn.send(&IpcMessage::Stop { name: "abandoned".into() }).await;
            }
            (conn, _) = IpcClient::connect(&path).await.expect("reconnect").into_connection();
        }
        let batch = (1 + rng.below(8) as usize).min(REQUESTS - sent);
        let msgs: Vec<_> = (sent..sent + batch)
            .map(|j| IpcMessage::Restart { name: format!("{id}-{j}") })
            .collect();
        for m in &msgs {
            conn.feed(m).await.expect("queue");
        }
        conn.flush().await.expect("flush");
        for m in &msgs {
            assert_eq!(conn.recv().await.expect("reply"), echoed(m), "client {id}");
            replies += 1;
        }
        sent += batch;
    }
    replies
}

/// One subscriber: events must come in publish order; every gap must be announced by a
/// `lagged` notice giving its exact size.
async fn subscriber(path: std::path::PathBuf, slow: bool) -> (u64, u64) {
    let mut client = IpcClient::connect(&path).await.expect("connect");
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("subscribe");
    let (mut next_seq, mut lost, mut received) = (None::<u64>, 0u64, 0u64);
    loop {
        let event = match client.next_event().await {
            Ok(e) => e,
            Err(IpcError::Closed) => return (received, lost),
            Err(e) => panic!("subscriber: {e}"),
        };
        if let Some(missed) = event.missed() {
            lost += missed;
            next_seq = next_seq.map(|s| s + missed);
            continue;
        }
        if event.data.get("end").is_some() {
            return (received, lost);
        }
        let seq = event.data["seq"].as_u64().expect("seq");
        if let Some(expected) = next_seq {
            assert_eq!(seq, expected, "events out of order or lost without notice");
        }
        next_seq = Some(seq + 1);
        received += 1;
        if slow && received % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[test]
fn soak_every_request_gets_exactly_one_reply_in_order_and_nothing_leaks() {
    let _serial = one_at_a_time();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let rt = rt.expect("runtime");
    // Settle lazily allocated runtime state before the baseline.
    rt.block_on(async {
        let ep = fresh_endpoint();
        let (_bus, daemon) = serve_echo(&ep, ServerOptions::new()).await;
        IpcClient::connect(ep.path())
            .await
            .expect("c")
            .request(&IpcMessage::List)
            .await
            .expect("r");
        daemon.abort();
        let _ = daemon.await;
    });
    let (fds_before, heap_before) = (open_fds(), heap());

    rt.block_on(async {
        let ep = fresh_endpoint();
        let (bus, daemon) = serve_echo(&ep, ServerOptions::new()).await;
        let subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|i| tokio::spawn(subscriber(ep.path().to_owned(), i % 2 == 1)))
            .collect();
        within("subscribed", async {
            while bus.subscriber_count() < SUBSCRIBERS {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let flood = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut seq = 0u64;
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = stop.clone();
                let publisher = tokio::spawn(async move {
                    while !flag.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            bus.publish("log_line", Some("web"), json!({"app": "web", "seq": seq}));
                            seq += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    bus.publish("log_line", Some("web"), json!({"app": "web", "end": true}));
                    seq
                });
                (stop, publisher)
            })
        };
        let requesters: Vec<_> =
            (0..CLIENTS).map(|i| tokio::spawn(requester(ep.path().to_owned(), i))).collect();
        for r in requesters {
            assert_eq!(patiently("requester", r).await.expect("requester"), REQUESTS);
        }
        let (stop, publisher) = flood.await.expect("flood");
        stop.store(true, Ordering::Relaxed);
        let published = publisher.await.expect("publisher");
        for s in subs {
            let (received, lost) = patiently("subscriber", s).await.expect("subscriber");
            assert!(received > 0);
            assert!(received + lost <= published);
        }
        daemon.abort();
        let _ = daemon.await;
        drop(bus);
    });

    // Everything the soak opened is closed and freed again. Aborted connection tasks are
    // dropped by the runtime on its next turns: give it those turns, up to a deadline.
    let deadline = std::time::Instant::now() + PATIENCE;
    while (open_fds() > fds_before || heap() > heap_before + 256 * 1024)
        && std::time::Instant::now() < deadline
    {
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
    }
    let (fds_after, heap_after) = (open_fds(), heap());
    assert!(fds_after <= fds_before, "descriptors: {fds_before} before, {fds_after} after");
    let grown = heap_after.saturating_sub(heap_before);
    assert!(grown < 256 * 1024, "heap: {heap_before} before, {heap_after} after");
}
