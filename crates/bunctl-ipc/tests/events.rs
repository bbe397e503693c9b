//! Live events: the bus's fan-out and loss accounting, and `serve`/`serve_connection` over real
//! endpoints. No test sleeps to synchronize: each waits on a reply, an event or a task, under a
//! deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bunctl_ipc::event_types::{
    LAGGED, LOG_LINE, PROCESS_CRASHED, PROCESS_EXITED, PROCESS_RESTARTING, PROCESS_STARTED,
    STATUS_CHANGE,
};
use bunctl_ipc::{
    BusEvent, Event, EventBus, IpcClient, IpcError, IpcMessage, IpcResponse, IpcServer,
    ServerOptions, Subscription, SubscriptionType, serve, serve_connection,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// The longest any single wait may take before the test fails (never reached when things work).
const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A fresh endpoint: a socket in a new temp dir, or a pipe name of its own on Windows (where a
/// path stands for `\\.\pipe\bunctl_<file name>`, and file names would collide).
fn endpoint() -> (TempDir, PathBuf) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = if cfg!(windows) {
        PathBuf::from(format!(r"\\.\pipe\bunctl-events-{}-{n}", std::process::id()))
    } else {
        dir.path().join(format!("events-{n}.sock"))
    };
    (dir, path)
}

/// A handler that answers `Status { name }` with `Data { name }` and anything else with its
/// debug form.
async fn echo(message: IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Status { name } => IpcResponse::Data { data: json!(name) },
        other => IpcResponse::Success { message: format!("{other:?}") },
    }
}

/// A bound server running `serve` in the background; the socket lives as long as `_dir`.
struct Running {
    _dir: TempDir,
    path: PathBuf,
    task: JoinHandle<Result<(), IpcError>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start<H>(bus: &EventBus, options: ServerOptions, handler: H) -> Running
where
    H: bunctl_ipc::Handler + Send + Sync + 'static,
{
    let (dir, path) = endpoint();
    // Bound before the task starts: clients can connect as soon as this returns.
    let server = IpcServer::bind_with(&path, options).await.expect("bind");
    let task = tokio::spawn(serve(server, bus.clone(), handler));
    Running { _dir: dir, path, task }
}

async fn connect(path: &Path) -> IpcClient {
    within("connect", IpcClient::connect(path)).await.expect("connect")
}

async fn next_event(client: &mut IpcClient) -> Event {
    within("an event", client.next_event()).await.expect("event")
}

fn all_filters() -> Vec<SubscriptionType> {
    let mut filters = Vec::new();
    for app in [None, Some("web".to_owned())] {
        filters.push(SubscriptionType::StatusEvents { app_name: app.clone() });
        filters.push(SubscriptionType::LogEvents { app_name: app.clone() });
        filters.push(SubscriptionType::AllEvents { app_name: app });
    }
    filters
}

const EVENT_TYPES: [&str; 7] = [
    STATUS_CHANGE,
    PROCESS_STARTED,
    PROCESS_EXITED,
    PROCESS_CRASHED,
    PROCESS_RESTARTING,
    LOG_LINE,
    "custom_event",
];
const EVENT_APPS: [Option<&str>; 3] = [None, Some("web"), Some("api")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_matrix_holds_over_real_subscriptions() {
    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let filters = all_filters();
    let mut clients = Vec::new();
    for filter in &filters {
        let mut client = connect(&server.path).await;
        // Once the reply is in, the subscription is registered on the bus.
        within("subscribe", client.subscribe(filter.clone())).await.expect("subscribed");
        clients.push(client);
    }
    for ty in EVENT_TYPES {
        for app in EVENT_APPS {
            bus.publish(ty, app, json!({ "type": ty, "app": app }));
        }
    }
    // One closing event per client that its own filter matches: once it arrives, everything
    // published before it has arrived too (each subscriber sees one publish order).
    for (i, filter) in filters.iter().enumerate() {
        let ty = match filter {
            SubscriptionType::StatusEvents { .. } => STATUS_CHANGE,
            SubscriptionType::LogEvents { .. } => LOG_LINE,
            SubscriptionType::AllEvents { .. } => "custom_event",
        };
        bus.publish(ty, filter.app_name(), json!({ "end_of": i }));
    }
    for (i, (filter, client)) in filters.iter().zip(&mut clients).enumerate() {
        let mut got = Vec::new();
        loop {
            let event = next_event(client).await;
            match event.data.get("end_of") {
                Some(n) if n == &json!(i) => break,
                Some(_) => continue,
                None => got.push((event.event_type.clone(), event.app().map(str::to_owned))),
            }
        }
        let expected: Vec<_> = EVENT_TYPES
            .iter()
            .flat_map(|ty| EVENT_APPS.iter().map(move |app| (*ty, *app)))
            .filter(|(ty, app)| filter.matches(ty, *app))
            .map(|(ty, app)| (ty.to_owned(), app.map(str::to_owned)))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "events received by {filter:?}");
    }
}

#[tokio::test]
async fn subscribe_is_answered_by_the_server_with_the_documented_message() {
    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    let sub =
        IpcMessage::Subscribe { subscription: SubscriptionType::AllEvents { app_name: None } };
    assert_eq!(
        within("reply", client.request(&sub)).await.expect("reply"),
        IpcResponse::Success { message: "Subscribed to events".into() }
    );
    assert_eq!(
        within("reply", client.request(&IpcMessage::Unsubscribe)).await.expect("reply"),
        IpcResponse::Success { message: "Unsubscribed from events".into() }
    );
    // Unsubscribing twice is not an error.
    assert_eq!(
        within("reply", client.request(&IpcMessage::Unsubscribe)).await.expect("reply"),
        IpcResponse::Success { message: "Unsubscribed from events".into() }
    );
    // Other messages still reach the handler.
    assert_eq!(
        within("reply", client.request(&IpcMessage::Status { name: Some("x".into()) }))
            .await
            .expect("reply"),
        IpcResponse::Data { data: json!("x") }
    );
}

#[tokio::test]
async fn resubscribing_replaces_the_previous_subscription() {
    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("subscribed");
    bus.publish(LOG_LINE, Some("web"), json!({ "n": 1 }));
    assert_eq!(next_event(&mut client).await.data, json!({ "n": 1 }));

    client
        .subscribe(SubscriptionType::StatusEvents { app_name: Some("web".into()) })
        .await
        .expect("resubscribed");
    assert_eq!(bus.subscriber_count(), 1, "the old subscription is gone, not kept beside");
    bus.publish(LOG_LINE, Some("web"), json!({ "n": 2 }));
    bus.publish(STATUS_CHANGE, Some("api"), json!({ "n": 3 }));
    bus.publish(STATUS_CHANGE, Some("web"), json!({ "n": 4 }));
    assert_eq!(next_event(&mut client).await.data, json!({ "n": 4 }));
}

#[tokio::test]
async fn no_event_follows_the_unsubscribe_reply() {
    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribed");
    for n in 0..100 {
        bus.publish("tick", None, json!(n));
    }
    client.unsubscribe().await.expect("unsubscribed");
    assert_eq!(bus.subscriber_count(), 0);
    bus.publish("tick", None, json!("after"));
    // A request/reply round trip after the publish: had the event been forwarded, it would
    // have been written before this reply.
    within("reply", client.request(&IpcMessage::List)).await.expect("reply");
    let (_conn, held) = client.into_connection();
    assert!(held.len() <= 100, "only events from before the unsubscribe are held");
    assert!(held.iter().all(|e| e.data != json!("after")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_interleave_with_pipelined_requests_and_replies_keep_request_order() {
    let bus = EventBus::new();
    let publisher = bus.clone();
    // Each request publishes one event, then replies: the event must precede its reply.
    let handler = move |message: IpcMessage| {
        let bus = publisher.clone();
        async move {
            let IpcMessage::Status { name: Some(n) } = message else {
                return IpcResponse::Error { message: "unexpected".into() };
            };
            bus.publish(LOG_LINE, Some("web"), json!({ "n": n }));
            IpcResponse::Data { data: json!(n) }
        }
    };
    let server = start(&bus, ServerOptions::new(), handler).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("subscribed");
    let (conn, held) = client.into_connection();
    assert!(held.is_empty());
    let (mut rx, mut tx) = conn.split();
    const N: usize = 300;
    // Send every request without waiting for replies, from another task.
    let sender = tokio::spawn(async move {
        for n in 0..N {
            tx.send(&IpcMessage::Status { name: Some(n.to_string()) }).await.expect("send");
        }
        tx
    });
    let mut seen = Vec::new();
    while seen.len() < 2 * N {
        seen.push(within("a frame", rx.recv()).await.expect("frame"));
    }
    let expected: Vec<IpcResponse> = (0..N)
        .flat_map(|n| {
            [
                IpcResponse::Event {
                    event_type: LOG_LINE.into(),
                    data: json!({ "n": n.to_string() }),
                },
                IpcResponse::Data { data: json!(n.to_string()) },
            ]
        })
        .collect();
    assert_eq!(seen, expected);
    drop(within("sender", sender).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_flowing_while_a_handler_is_busy() {
    let bus = EventBus::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler_gate = Arc::clone(&gate);
    let handler = move |_message: IpcMessage| {
        let gate = Arc::clone(&handler_gate);
        async move {
            gate.acquire().await.expect("gate").forget();
            IpcResponse::Success { message: "done".into() }
        }
    };
    let server = start(&bus, ServerOptions::new(), handler).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribed");
    client.send(&IpcMessage::List).await.expect("send");
    // The handler is now blocked (or about to be); events still arrive.
    bus.publish("tick", None, json!(1));
    assert_eq!(
        within("event", client.recv()).await.expect("recv"),
        Event::new("tick", json!(1)).into()
    );
    gate.add_permits(1);
    assert_eq!(
        within("reply", client.recv()).await.expect("recv"),
        IpcResponse::Success { message: "done".into() }
    );
}

#[cfg(unix)]
#[tokio::test]
async fn undecodable_frames_get_an_error_reply_and_the_connection_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut raw = tokio::net::UnixStream::connect(&server.path).await.expect("connect");
    async fn reply(raw: &mut tokio::net::UnixStream) -> IpcResponse {
        let mut len = [0u8; 4];
        within("header", raw.read_exact(&mut len)).await.expect("header");
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        within("body", raw.read_exact(&mut body)).await.expect("body");
        serde_json::from_slice(&body).expect("a response")
    }
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }
    for (bad, names) in [
        (frame(b"{not json"), "invalid message"),
        (frame(br#"{"Reboot":{}}"#), "unknown variant `Reboot`"),
        (frame(b"\xff\xfe"), "invalid message"),
        (0u32.to_le_bytes().to_vec(), "empty frame"),
    ] {
        raw.write_all(&bad).await.expect("write");
        match reply(&mut raw).await {
            IpcResponse::Error { message } => {
                assert!(message.contains(names), "{message:?} should name {names:?}")
            }
            other => panic!("expected an Error reply, got {other:?}"),
        }
    }
    raw.write_all(&frame(br#"{"Status":{"name":"ok"}}"#)).await.expect("write");
    assert_eq!(reply(&mut raw).await, IpcResponse::Data { data: json!("ok") });
}

#[cfg(unix)]
#[tokio::test]
async fn oversized_frame_gets_an_error_reply_then_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new().with_max_message_size(1024), echo).await;
    let mut raw = tokio::net::UnixStream::connect(&server.path).await.expect("connect");
    raw.write_all(&(1_000_000u32).to_le_bytes()).await.expect("write");
    let mut rest = Vec::new();
    within("close", raw.read_to_end(&mut rest)).await.expect("read to end");
    let reply: IpcResponse = serde_json::from_slice(&rest[4..]).expect("one response, then EOF");
    assert_eq!(
        reply,
        IpcResponse::Error {
            message: "message size 1000000 exceeds maximum allowed size 1024".into()
        }
    );
}

/// Receives everything queued right now (never waits).
fn drain(sub: &mut Subscription) -> Vec<BusEvent> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}

#[test]
fn slow_subscriber_under_a_million_event_flood_stays_bounded_and_gets_the_exact_lagged_count() {
    const FLOOD: u64 = 1_000_000;
    const CAP: usize = 1024;
    let bus = EventBus::with_capacity(CAP);
    let slow = bus.subscribe(SubscriptionType::LogEvents { app_name: None });
    let mut fast = bus.subscribe(SubscriptionType::LogEvents { app_name: None });
    let mut fast_seen = 0u64;
    // `publish` is a plain function: this loop runs on a thread with no runtime, and nothing
    // ever reads `slow` during it. Were a publish to wait for a subscriber, it would hang here.
    for n in 0..FLOOD {
        assert_eq!(bus.publish(LOG_LINE, Some("web"), Value::from(n)), 2);
        assert!(slow.len() <= CAP, "queue over its bound after event {n}");
        // The fast subscriber reads whenever its queue is full, so it never falls behind.
        if fast.len() == CAP {
            for event in drain(&mut fast) {
                assert_eq!(
                    event.data(),
                    &Value::from(fast_seen),
                    "fast subscriber missed or reordered"
                );
                fast_seen += 1;
            }
        }
    }
    for event in drain(&mut fast) {
        assert_eq!(event.data(), &Value::from(fast_seen));
        fast_seen += 1;
    }
    assert_eq!(fast_seen, FLOOD, "fast subscriber got every event");

    let mut slow = slow;
    assert_eq!(slow.len(), CAP);
    assert_eq!(slow.missed(), FLOOD - CAP as u64);
    let received = drain(&mut slow);
    assert_eq!(received[0].event_type(), LAGGED);
    assert_eq!(received[0].missed(), Some(FLOOD - CAP as u64));
    // The first event (position 1) and every one after it up to the kept ones were dropped.
    let lost = FLOOD - CAP as u64;
    assert_eq!(received[0].data(), &json!({ "missed": lost, "first_seq": 1, "last_seq": lost }));
    assert_eq!(received[0].lost_range(), Some(1..=lost));
    // Then the newest CAP events, in order: the oldest were the ones dropped.
    let kept: Vec<u64> = received[1..].iter().map(|e| e.data().as_u64().expect("n")).collect();
    assert_eq!(kept, ((FLOOD - CAP as u64)..FLOOD).collect::<Vec<_>>());
    // Caught up: no further notice.
    bus.publish(LOG_LINE, Some("web"), json!("next"));
    assert_eq!(
        drain(&mut slow).iter().map(|e| e.data().clone()).collect::<Vec<_>>(),
        [json!("next")]
    );
}

#[test]
fn lagged_count_covers_only_events_the_subscriber_would_have_received() {
    let bus = EventBus::with_capacity(8);
    let mut quiet = bus.subscribe(SubscriptionType::LogEvents { app_name: Some("quiet".into()) });
    // A flood about another app never touches the quiet app's subscriber ...
    for n in 0..100_000 {
        bus.publish(LOG_LINE, Some("noisy"), Value::from(n));
    }
    bus.publish(LOG_LINE, Some("quiet"), json!("mine"));
    let got = drain(&mut quiet);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data(), &json!("mine"));
    // ... and when it does lag, only its own events are counted.
    for n in 0..20 {
        bus.publish(LOG_LINE, Some("quiet"), Value::from(n));
        bus.publish(LOG_LINE, Some("noisy"), Value::from(n));
        bus.publish(STATUS_CHANGE, Some("quiet"), Value::from(n));
    }
    let got = drain(&mut quiet);
    assert_eq!(got[0].missed(), Some(12));
    assert_eq!(got.len(), 1 + 8);
}

#[test]
fn every_matching_event_is_delivered_or_counted_as_missed_under_concurrency() {
    const PER_PUBLISHER: u64 = 200_000;
    let bus = EventBus::with_capacity(64);
    let subscribers: Vec<Subscription> =
        (0..4).map(|_| bus.subscribe(SubscriptionType::AllEvents { app_name: None })).collect();
    let publishers: Vec<_> = (0..2u64)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..PER_PUBLISHER {
                    bus.publish("tick", None, json!([p, n]));
                }
            })
        })
        .collect();
    let consumers: Vec<_> = subscribers
        .into_iter()
        .map(|mut sub| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                rt.block_on(async move {
                    let (mut delivered, mut missed) = (0u64, 0u64);
                    let mut last = [None::<u64>; 2];
                    let mut batch = Vec::new();
                    while delivered + missed < 2 * PER_PUBLISHER {
                        batch.clear();
                        sub.recv_many(&mut batch, 100).await;
                        for event in &batch {
                            if let Some(m) = event.missed() {
                                missed += m;
                                continue;
                            }
                            let p = event.data()[0].as_u64().expect("publisher") as usize;
                            let n = event.data()[1].as_u64().expect("sequence");
                            assert!(
                                last[p].is_none_or(|l| n > l),
                                "events of one publisher in order"
                            );
                            last[p] = Some(n);
                            delivered += 1;
                        }
                    }
                    (delivered, missed)
                })
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher");
    }
    for c in consumers {
        let (delivered, missed) = c.join().expect("consumer");
        assert_eq!(delivered + missed, 2 * PER_PUBLISHER);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_socket_subscriber_resumes_with_a_lagged_notice_after_a_flood() {
    const FLOOD: u64 = 1_000_000;
    let bus = EventBus::with_capacity(256);
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("subscribed");
    // The client reads nothing while a million events are published.
    let publisher = bus.clone();
    tokio::task::spawn_blocking(move || {
        for n in 0..FLOOD {
            publisher.publish(LOG_LINE, Some("web"), Value::from(n));
        }
        publisher.publish(LOG_LINE, Some("web"), json!("end"));
    })
    .await
    .expect("publisher");
    // Now it reads: what the server had written or queued, a lagged notice where the gap is,
    // then the newest events. Every event is accounted for, in order.
    let (mut delivered, mut missed, mut lagged_notices) = (0u64, 0u64, 0);
    let mut next = 0u64;
    loop {
        let event = next_event(&mut client).await;
        if let Some(m) = event.missed() {
            missed += m;
            next += m;
            lagged_notices += 1;
            continue;
        }
        if event.data == json!("end") {
            break;
        }
        assert_eq!(event.data, Value::from(next), "in order, gaps only where reported");
        next += 1;
        delivered += 1;
    }
    assert_eq!(delivered + missed, FLOOD);
    assert!(lagged_notices >= 1 && missed > 0, "a stalled reader must have lost events");
}

#[tokio::test]
async fn disconnected_subscriber_is_removed_from_the_bus() {
    let bus = EventBus::new();
    let (_dir, path) = endpoint();
    let mut server = IpcServer::bind(&path).await.expect("bind");
    let mut client = connect(&path).await;
    let conn = within("accept", server.accept()).await.expect("accept");
    let served_bus = bus.clone();
    let served = tokio::spawn(async move { serve_connection(conn, &served_bus, &echo).await });
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribed");
    assert_eq!(bus.subscriber_count(), 1);
    drop(client);
    let outcome = within("the connection to end", served).await.expect("task");
    assert!(outcome.is_ok(), "a client leaving is a clean end: {outcome:?}");
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish(LOG_LINE, None, Value::Null), 0);
}

#[tokio::test(start_paused = true)]
async fn subscribed_client_is_not_cut_off_by_the_receive_timeout() {
    let bus = EventBus::new();
    let (_dir, path) = endpoint();
    let timeout = Duration::from_millis(100);
    let mut server = IpcServer::bind_with(&path, ServerOptions::new().with_timeout(timeout))
        .await
        .expect("bind");
    let mut client = connect(&path).await;
    let conn = within("accept", server.accept()).await.expect("accept");
    let served_bus = bus.clone();
    let mut served = tokio::spawn(async move { serve_connection(conn, &served_bus, &echo).await });
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribed");
    // Ten receive timeouts pass with the client only listening: the connection must still run.
    let still_running = tokio::time::timeout(10 * timeout, &mut served).await;
    assert!(still_running.is_err(), "connection ended: {still_running:?}");
    bus.publish("tick", None, json!("late"));
    assert_eq!(next_event(&mut client).await.data, json!("late"));
    // Requests still work too.
    let reply = within("reply", client.request(&IpcMessage::Status { name: None })).await;
    assert_eq!(reply.expect("reply"), IpcResponse::Data { data: Value::Null });
}

#[tokio::test(start_paused = true)]
async fn client_that_never_reads_its_replies_is_disconnected_after_the_timeout() {
    let bus = EventBus::new();
    let (_dir, path) = endpoint();
    let timeout = Duration::from_millis(200);
    let mut server = IpcServer::bind_with(&path, ServerOptions::new().with_timeout(timeout))
        .await
        .expect("bind");
    let client = connect(&path).await;
    let conn = within("accept", server.accept()).await.expect("accept");
    let big = |_m: IpcMessage| async { IpcResponse::Data { data: json!("x".repeat(256 * 1024)) } };
    let served_bus = bus.clone();
    let served = tokio::spawn(async move { serve_connection(conn, &served_bus, &big).await });
    // Subscribed, so only the reply deadline can end it, not the idle limit.
    let (mut conn, _) = client.into_connection();
    conn.send(&IpcMessage::Subscribe {
        subscription: SubscriptionType::AllEvents { app_name: None },
    })
    .await
    .expect("send");
    for _ in 0..8 {
        conn.send(&IpcMessage::List).await.expect("send");
    }
    // ... and reads nothing: the replies fill the socket, and the server gives up.
    let outcome = within("the server to give up", served).await.expect("task");
    assert!(
        matches!(outcome, Err(IpcError::Timeout { operation: bunctl_ipc::Operation::Send, .. })),
        "{outcome:?}"
    );
    assert_eq!(bus.subscriber_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_unsubscribed_client_is_disconnected_after_the_timeout() {
    let bus = EventBus::new();
    let timeout = Duration::from_millis(100);
    let server = start(&bus, ServerOptions::new().with_timeout(timeout), echo).await;
    let mut client = connect(&server.path).await;
    within("reply", client.request(&IpcMessage::List)).await.expect("reply");
    client.set_timeout(PATIENCE);
    // The client now sends nothing; the server closes the connection.
    let err = within("the server to close", client.recv()).await.expect_err("closed");
    assert!(err.is_disconnect(), "{err:?}");
}

#[tokio::test]
async fn client_event_stream_yields_published_events_in_order() {
    let bus = EventBus::new();
    let server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    client
        .subscribe(SubscriptionType::StatusEvents { app_name: Some("web".into()) })
        .await
        .expect("subscribed");
    for n in 0..50 {
        bus.publish(STATUS_CHANGE, Some("web"), json!({ "n": n }));
        bus.publish(LOG_LINE, Some("web"), json!({ "n": n }));
    }
    let events: Vec<Event> =
        within("50 events", client.events().take(50).map(|e| e.expect("event")).collect()).await;
    // Positions count every event on the bus: the status events are at 1, 3, 5, ...
    let expected: Vec<Event> = (0..50)
        .map(|n| Event::new(STATUS_CHANGE, json!({ "n": n })).with_seq(Some(2 * n + 1)))
        .collect();
    assert_eq!(events, expected);
}

#[tokio::test]
async fn dropping_serve_removes_the_socket_and_ends_connections() {
    let bus = EventBus::new();
    let mut server = start(&bus, ServerOptions::new(), echo).await;
    let mut client = connect(&server.path).await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribed");
    server.task.abort();
    let _ = (&mut server.task).await;
    #[cfg(unix)]
    assert!(!server.path.exists(), "socket file removed");
    let err = within("close", client.recv()).await.expect_err("connection ended");
    assert!(err.is_disconnect(), "{err:?}");
    assert_eq!(bus.subscriber_count(), 0);
}

#[tokio::test]
async fn a_dropped_lagged_notice_counts_every_event_it_announced() {
    // A server that, while the client waits for a reply, sends a notice of 100 lost events and
    // then more events than the client holds back: the notice itself is what the client drops.
    let (_dir, path) = endpoint();
    let mut server = IpcServer::bind(&path).await.expect("bind");
    let mut client = connect(&path).await;
    let mut conn = within("accept", server.accept()).await.expect("accept");
    const HELD: u64 = bunctl_ipc::DEFAULT_HELD_EVENTS as u64;
    let serving = tokio::spawn(async move {
        let request = conn.recv().await.expect("request");
        conn.send(&Event::lagged(100).into()).await.expect("notice");
        for n in 0..HELD {
            conn.send(&Event::new(LOG_LINE, json!({ "n": n })).into()).await.expect("event");
        }
        conn.send(&IpcResponse::Success { message: format!("{request:?}") }).await.expect("reply");
        conn
    });
    within("reply", client.request(&IpcMessage::List)).await.expect("reply");
    let mut missed = 0;
    let mut delivered = 0;
    while delivered < HELD {
        let event = next_event(&mut client).await;
        match event.missed() {
            Some(n) => missed += n,
            None => delivered += 1,
        }
    }
    assert_eq!((delivered, missed), (HELD, 100), "every event delivered or counted, once");
    drop(within("server", serving).await.expect("task"));
}

#[test]
fn publishing_under_the_loss_notice_name_delivers_nothing() {
    // A `lagged` event on the wire is always the server's own notice, so a client can trust it.
    let bus = EventBus::new();
    let mut all = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
    assert_eq!(bus.publish(LAGGED, None, json!({ "missed": 5 })), 0);
    assert_eq!(bus.publish(LAGGED, Some("web"), json!("anything")), 0);
    assert!(all.try_recv().is_none());
}
