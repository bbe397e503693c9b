//! Heap of a subscriber that stops reading during a flood, measured with a counting global
//! allocator. Its own test binary, so that no other test's allocations are counted; the tests
//! in it take turns.
//!
//! The figures are printed; run with `--nocapture` to see them:
//! `cargo test --release -p bunctl-ipc --test events_heap -- --nocapture`.

use std::path::PathBuf;

use bunctl_ipc::event_types::LOG_LINE;
use bunctl_ipc::{
    BusOptions, DEFAULT_QUEUE_CAPACITY, DEFAULT_RETAINED_BYTES, DEFAULT_RETAINED_EVENTS, EventBus,
    IpcClient, IpcMessage, IpcResponse, IpcServer, SubscriptionType, serve,
};
use serde_json::{Value, json};

#[path = "common/alloc.rs"]
mod alloc;

use alloc::{baseline, heap, one_at_a_time, peak_above};

/// A realistic event: one log line of a web app.
fn log_line(n: u64) -> Value {
    json!({ "app": "web", "stream": "stdout", "line": format!("GET /items/{n} 200 1.2ms") })
}

const FLOOD: u64 = 1_000_000;

/// What one queued event may cost at most here: the shared event (~1 KiB with its JSON map)
/// and its encoded frame. The bound asserted is generous; the printed figure is the result.
const PER_EVENT_BOUND: usize = 2048;

#[test]
fn subscriber_that_stops_reading_holds_bounded_heap_during_a_million_event_flood() {
    let _turn = one_at_a_time();
    // Nothing kept for replay: what is left afterwards is the subscription's (the next test
    // measures what the bus keeps).
    let bus = EventBus::with_options(BusOptions::new().with_retained_events(0));
    let base = baseline();
    let stalled = bus.subscribe(SubscriptionType::LogEvents { app_name: None });
    let mut largest_queue = 0;
    for n in 0..FLOOD {
        bus.publish(LOG_LINE, Some("web"), log_line(n));
        largest_queue = largest_queue.max(stalled.len());
    }
    let peak = peak_above(base);
    println!(
        "in-process subscriber, {FLOOD} events, queue bound {DEFAULT_QUEUE_CAPACITY}: \
         peak heap {peak} bytes ({} per queued event), largest queue {largest_queue}",
        peak / DEFAULT_QUEUE_CAPACITY
    );
    assert_eq!(largest_queue, DEFAULT_QUEUE_CAPACITY);
    assert_eq!(stalled.missed(), FLOOD - DEFAULT_QUEUE_CAPACITY as u64);
    assert!(peak < DEFAULT_QUEUE_CAPACITY * PER_EVENT_BOUND, "peak heap {peak} bytes");
    drop(stalled);
    let left = heap().saturating_sub(base);
    // A few small allocations of the test harness may land in between: allow 16 KiB.
    assert!(left <= 16 * 1024, "{left} bytes still held after the subscription was dropped");
}

/// What the bus holds for one kept event beyond its frame: the shared event and its names.
const KEPT_OVERHEAD: usize = 256;

#[test]
fn what_the_bus_keeps_for_replay_stays_within_its_bounds_during_a_million_event_flood() {
    let _turn = one_at_a_time();
    let bus = EventBus::new();
    let base = baseline();
    for n in 0..FLOOD {
        bus.publish(LOG_LINE, Some("web"), log_line(n));
    }
    let held = heap().saturating_sub(base);
    let kept = bus.history(&SubscriptionType::LogEvents { app_name: Some("web".into()) });
    let frames: usize = kept.iter().map(|e| e.encoded_frame().len()).sum();
    println!(
        "bus with no subscriber, {FLOOD} events: {held} bytes held for {} kept events \
         ({frames} bytes of frames)",
        kept.len()
    );
    assert_eq!(kept.len(), DEFAULT_RETAINED_EVENTS, "the most recent are kept");
    assert_eq!(kept.last().and_then(|e| e.seq()), Some(FLOOD));
    assert!(frames <= DEFAULT_RETAINED_BYTES);
    let bound = DEFAULT_RETAINED_BYTES.min(frames) + DEFAULT_RETAINED_EVENTS * KEPT_OVERHEAD;
    assert!(held <= bound + 16 * 1024, "{held} bytes held, bound {bound}");
    drop(kept);
    drop(bus);
    let left = heap().saturating_sub(base);
    assert!(left <= 16 * 1024, "{left} bytes still held after the bus was dropped");
}

#[test]
fn connected_subscriber_that_stops_reading_holds_bounded_heap_during_a_million_event_flood() {
    let _turn = one_at_a_time();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = if cfg!(windows) {
        PathBuf::from(format!(r"\\.\pipe\bunctl-heap-{}", std::process::id()))
    } else {
        dir.path().join("heap.sock")
    };
    let bus = EventBus::new();
    let mut client = rt.block_on(async {
        let server = IpcServer::bind(&path).await.expect("bind");
        tokio::spawn(serve(server, bus.clone(), |_m: IpcMessage| async {
            IpcResponse::Success { message: "ok".into() }
        }));
        let mut client = IpcClient::connect(&path).await.expect("connect");
        client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("sub");
        client
    });
    // Everything from here on is the server side's doing: the client reads nothing until the
    // flood is over, and kernel socket buffers are not heap.
    let base = baseline();
    for n in 0..FLOOD {
        bus.publish(LOG_LINE, Some("web"), log_line(n));
    }
    let peak = peak_above(base);
    println!(
        "subscriber over a socket, {FLOOD} events, queue bound {DEFAULT_QUEUE_CAPACITY}: \
         peak heap {peak} bytes (queue, plus at most 64 KiB of write buffer)"
    );
    assert!(peak < DEFAULT_QUEUE_CAPACITY * PER_EVENT_BOUND + 256 * 1024, "peak heap {peak} bytes");
    // And the subscriber is still served: it reads on and is told what it lost.
    bus.publish(LOG_LINE, Some("web"), json!("end"));
    let missed = rt.block_on(async {
        let mut missed = 0;
        loop {
            let event =
                tokio::time::timeout(std::time::Duration::from_secs(20), client.next_event())
                    .await
                    .expect("events keep coming")
                    .expect("event");
            missed += event.missed().unwrap_or(0);
            if event.data == json!("end") {
                return missed;
            }
        }
    });
    assert!(missed > 0);
}
