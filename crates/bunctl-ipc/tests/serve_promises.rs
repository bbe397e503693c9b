//! The promises `serve_connection` makes about time, shutdown and loss, each under the timing
//! that once broke it: replies read steadily behind pipelined bursts or event floods, output
//! left queued at shutdown or after a half-close, a complete request followed by a bad frame,
//! subscriptions replaced while events wait, frame limits too small for a loss notice.
//!
//! Most tests drive one served connection over an in-memory pipe with a small buffer, so that
//! the client's reading pace, not the OS, decides when the server can write; all run on tokio's
//! paused clock.

mod common;

use std::time::Duration;

use bunctl_ipc::{
    Connection, EventBus, FrameConfig, IpcError, IpcMessage, IpcResponse, Operation, ServerOptions,
    SubscriptionType,
};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(1);

/// The handler of every test here: echoes the request's name (`Stop`), or its config (`Start`),
/// so a request can ask for a reply of any size.
async fn echo_name(message: IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Stop { name } => IpcResponse::Success { message: name },
        IpcMessage::Start { config, .. } => IpcResponse::Success { message: config },
        other => IpcResponse::Error { message: format!("unexpected {other:?}") },
    }
}

/// One connection served over a pipe whose buffers hold `buffer` bytes each way, with the
/// server's `TIMEOUT`, until `shutdown` fires (if given). Returns the client's two halves and
/// the served connection's outcome.
fn serve_over_pipe(
    bus: &EventBus,
    buffer: usize,
    config: FrameConfig,
    shutdown: Option<oneshot::Receiver<()>>,
) -> (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>, JoinHandle<bunctl_ipc::Result<()>>) {
    let (client, server) = tokio::io::duplex(buffer);
    let mut conn: Connection<_, IpcMessage, IpcResponse> =
        Connection::with_config(server, config, TIMEOUT);
    // Quiet stretches in these tests are not what they test.
    conn.set_idle_timeout(60 * TIMEOUT);
    let bus = bus.clone();
    let served = tokio::spawn(async move {
        let shutdown = async move {
            match shutdown {
                Some(rx) => drop(rx.await),
                None => std::future::pending().await,
            }
        };
        bunctl_ipc::serve_connection_until(conn, &bus, &echo_name, shutdown).await
    });
    let (read, write) = tokio::io::split(client);
    (read, write, served)
}

/// The frames a client has read so far, decoded as they complete.
struct Frames {
    bytes: Vec<u8>,
}

impl Frames {
    fn new() -> Self {
        Frames { bytes: Vec::new() }
    }

    /// Reads at most `chunk` bytes (waiting for at least one); false at the end of the stream.
    async fn read_some(&mut self, from: &mut ReadHalf<DuplexStream>, chunk: usize) -> bool {
        let mut buf = vec![0; chunk];
        let n = from.read(&mut buf).await.expect("read");
        self.bytes.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Every complete frame read so far, oldest first.
    fn take(&mut self) -> Vec<IpcResponse> {
        let mut out = Vec::new();
        let mut at = 0;
        while self.bytes.len() >= at + 4 {
            let len = u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"));
            let end = at + 4 + len as usize;
            if self.bytes.len() < end {
                break;
            }
            out.push(serde_json::from_slice(&self.bytes[at + 4..end]).expect("a response"));
            at = end;
        }
        self.bytes.drain(..at);
        out
    }
}

fn encoded(message: &IpcMessage) -> Vec<u8> {
    frame(&serde_json::to_vec(message).expect("json"))
}

fn stop(name: impl Into<String>) -> IpcMessage {
    IpcMessage::Stop { name: name.into() }
}

fn success(reply: &IpcResponse) -> Option<&str> {
    match reply {
        IpcResponse::Success { message } => Some(message),
        _ => None,
    }
}

async fn subscribe_all(read: &mut ReadHalf<DuplexStream>, write: &mut WriteHalf<DuplexStream>) {
    let subscribe =
        IpcMessage::Subscribe { subscription: SubscriptionType::AllEvents { app_name: None } };
    write.write_all(&encoded(&subscribe)).await.expect("write");
    let mut frames = Frames::new();
    loop {
        assert!(frames.read_some(read, 1024).await, "closed before the subscription's reply");
        if let Some(reply) = frames.take().first() {
            assert!(success(reply).is_some(), "{reply:?}");
            return;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn pipelined_replies_read_steadily_are_never_timed_out() {
    let bus = EventBus::new();
    let (mut read, mut write, served) = serve_over_pipe(&bus, 4096, FrameConfig::new(), None);
    const REQUESTS: usize = 30_000;
    let requests: Vec<u8> = (0..REQUESTS).flat_map(|i| encoded(&stop(format!("r{i}")))).collect();
    let writer = tokio::spawn(async move {
        write.write_all(&requests).await.expect("all requests written");
        write
    });
    // 4 KiB every 10 ms: no reply waits more than a few hundred milliseconds behind the output
    // the server may queue, well under the 1 s timeout; the whole exchange takes seconds.
    let started = Instant::now();
    let mut frames = Frames::new();
    let mut next = 0;
    while next < REQUESTS {
        let open = frames.read_some(&mut read, 4096).await;
        for reply in frames.take() {
            assert_eq!(success(&reply), Some(format!("r{next}").as_str()), "reply {next}");
            next += 1;
        }
        assert!(
            open || next == REQUESTS,
            "closed after {next} replies: {:?}",
            served.is_finished()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started.elapsed() > 2 * TIMEOUT, "the exchange should outlast the timeout");
    writer.await.expect("writer").shutdown().await.expect("end of requests");
    assert!(within("served", served).await.expect("task").is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_reply_after_a_burst_of_pipelined_requests_has_its_own_deadline() {
    let bus = EventBus::new();
    let (mut read, mut write, served) = serve_over_pipe(&bus, 4096, FrameConfig::new(), None);
    // Bursts of 128 and more (the rounds one poll runs before yielding), each read back at once.
    for burst in [128, 129, 256, 300] {
        let requests: Vec<u8> = (0..burst).flat_map(|i| encoded(&stop(format!("b{i}")))).collect();
        write.write_all(&requests).await.expect("burst");
        let mut frames = Frames::new();
        let mut got = 0;
        while got < burst {
            assert!(frames.read_some(&mut read, 65536).await, "closed in burst {burst}");
            got += frames.take().len();
        }
    }
    // Quiet for longer than the timeout, then a reply much larger than the pipe's buffer, read
    // from a tenth of the timeout on, quickly.
    tokio::time::sleep(3 * TIMEOUT).await;
    let big = "x".repeat(512 * 1024);
    let request = IpcMessage::Start { name: "big".into(), config: big.clone() };
    write.write_all(&encoded(&request)).await.expect("request");
    tokio::time::sleep(TIMEOUT / 10).await;
    let mut frames = Frames::new();
    let reply = loop {
        assert!(frames.read_some(&mut read, 65536).await, "the large reply was cut off");
        if let Some(reply) = frames.take().pop() {
            break reply;
        }
    };
    assert_eq!(success(&reply), Some(big.as_str()));
    write.shutdown().await.expect("end of requests");
    assert!(within("served", served).await.expect("task").is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_flooded_subscriber_gets_the_reply_to_a_request_sent_seconds_after_its_first() {
    let bus = EventBus::new();
    let (mut read, mut write, served) = serve_over_pipe(&bus, 8192, FrameConfig::new(), None);
    subscribe_all(&mut read, &mut write).await;
    // About 4 MB/s of events for 6 s; the client reads 800 KB/s, so it lags, as designed.
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let pad = "p".repeat(150);
            for tick in 0..6000 {
                for n in 0..20 {
                    bus.publish("log_line", Some("web"), json!({"tick": tick, "n": n, "pad": pad}));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut answered = Vec::new();
    let mut frames = Frames::new();
    while answered.len() < 2 && start.elapsed() < Duration::from_secs(6) {
        let elapsed = start.elapsed();
        for (name, at) in [("first", Duration::from_millis(500)), ("second", 3500 * TIMEOUT / 1000)]
        {
            if elapsed >= at && !sent.contains(&name) {
                write.write_all(&encoded(&stop(name))).await.expect("request");
                sent.push(name);
            }
        }
        if !frames.read_some(&mut read, 8192).await {
            break;
        }
        for reply in frames.take() {
            if let Some(name) = success(&reply) {
                answered.push(name.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    publisher.abort();
    assert_eq!(answered, ["first", "second"], "served: {:?}", served.is_finished());
}

#[tokio::test(start_paused = true)]
async fn output_queued_at_shutdown_must_be_written_within_the_send_timeout() {
    let bus = EventBus::new();
    let (stop_serving, shutdown) = oneshot::channel();
    let (mut read, mut write, served) =
        serve_over_pipe(&bus, 1024, FrameConfig::new(), Some(shutdown));
    subscribe_all(&mut read, &mut write).await;
    // The subscriber stops reading; its output fills up.
    for n in 0..200 {
        bus.publish("log_line", Some("web"), json!({"n": n, "pad": "p".repeat(1000)}));
    }
    tokio::time::sleep(TIMEOUT / 10).await;
    let stopped_at = Instant::now();
    stop_serving.send(()).expect("served");
    let outcome = tokio::time::timeout(10 * TIMEOUT, served)
        .await
        .expect("a connection that never reads must not hold up shutdown")
        .expect("task");
    assert!(
        matches!(outcome, Err(IpcError::Timeout { operation: Operation::Send, .. })),
        "{outcome:?}"
    );
    let waited = stopped_at.elapsed();
    assert!(waited >= TIMEOUT && waited <= 2 * TIMEOUT, "ended after {waited:?}");
    drop(read);
}

#[tokio::test(start_paused = true)]
async fn output_queued_when_the_client_half_closes_must_be_written_within_the_send_timeout() {
    let bus = EventBus::new();
    let (mut read, mut write, served) = serve_over_pipe(&bus, 1024, FrameConfig::new(), None);
    subscribe_all(&mut read, &mut write).await;
    for n in 0..200 {
        bus.publish("log_line", Some("web"), json!({"n": n, "pad": "p".repeat(1000)}));
    }
    tokio::time::sleep(TIMEOUT / 10).await;
    write.shutdown().await.expect("half-close");
    let outcome = tokio::time::timeout(10 * TIMEOUT, served)
        .await
        .expect("a half-closed client that never reads must not keep its connection")
        .expect("task");
    assert!(
        matches!(outcome, Err(IpcError::Timeout { operation: Operation::Send, .. })),
        "{outcome:?}"
    );
    drop(read);
}

#[tokio::test(start_paused = true)]
async fn serve_until_returns_within_the_send_timeout_when_a_subscriber_never_reads() {
    let ep = fresh_endpoint();
    let server =
        bunctl_ipc::IpcServer::bind_with(ep.path(), ServerOptions::new().with_timeout(TIMEOUT))
            .await
            .expect("bind");
    let bus = EventBus::new();
    let (stop_serving, shutdown) = oneshot::channel::<()>();
    let grace = Duration::from_secs(600);
    let serving = tokio::spawn(bunctl_ipc::serve_until(
        server,
        bus.clone(),
        echo_name,
        async move { drop(shutdown.await) },
        grace,
    ));
    let mut client = bunctl_ipc::IpcClient::connect(ep.path()).await.expect("connect");
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribe");
    // Far more than the socket's buffers and the connection's own queue hold.
    for n in 0..1000 {
        bus.publish("log_line", Some("web"), json!({"n": n, "pad": "p".repeat(4000)}));
    }
    tokio::time::sleep(TIMEOUT / 10).await;
    let stopped_at = Instant::now();
    stop_serving.send(()).expect("serving");
    within("serve_until", serving).await.expect("task").expect("served");
    let waited = stopped_at.elapsed();
    assert!(waited <= 2 * TIMEOUT, "shutdown took {waited:?} (grace {grace:?})");
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_complete_request_is_answered_even_when_a_truncated_frame_follows() {
    let bus = EventBus::new();
    let (mut read, mut write, served) = serve_over_pipe(&bus, 4096, FrameConfig::new(), None);
    let mut bytes = encoded(&stop("complete"));
    bytes.extend_from_slice(&[40, 0, 0, 0, b'{']);
    write.write_all(&bytes).await.expect("write");
    write.shutdown().await.expect("end mid-frame");
    let mut frames = Frames::new();
    while frames.read_some(&mut read, 4096).await {}
    let replies = frames.take();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(success(&replies[0]), Some("complete"));
    let outcome = within("served", served).await.expect("task");
    assert!(matches!(outcome, Err(ref e) if e.is_disconnect()), "{outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn events_queued_for_a_replaced_subscription_are_announced_before_the_reply() {
    for replacement in [
        IpcMessage::Subscribe { subscription: SubscriptionType::StatusEvents { app_name: None } },
        IpcMessage::Unsubscribe,
    ] {
        let bus = EventBus::with_capacity(64);
        let (mut read, mut write, served) =
            serve_over_pipe(&bus, 1 << 20, FrameConfig::new(), None);
        subscribe_all(&mut read, &mut write).await;
        const PUBLISHED: u64 = 10;
        for n in 0..PUBLISHED {
            bus.publish("log_line", Some("web"), json!({ "n": n }));
        }
        // Sent before the server has had a chance to forward any of them.
        write.write_all(&encoded(&replacement)).await.expect("write");
        let mut frames = Frames::new();
        let (mut delivered, mut announced) = (0, 0);
        'reply: loop {
            assert!(frames.read_some(&mut read, 4096).await, "closed");
            for reply in frames.take() {
                match reply {
                    IpcResponse::Event { event_type, data } if event_type == "lagged" => {
                        announced += data["missed"].as_u64().expect("missed")
                    }
                    IpcResponse::Event { .. } => delivered += 1,
                    other => {
                        assert!(success(&other).is_some(), "{other:?}");
                        break 'reply;
                    }
                }
            }
        }
        assert_eq!(
            delivered + announced,
            PUBLISHED,
            "{replacement:?}: {delivered} delivered, {announced} announced lost"
        );
        write.shutdown().await.expect("end of requests");
        assert!(within("served", served).await.expect("task").is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn losses_are_never_silent_when_a_loss_notice_does_not_fit_the_frame_limit() {
    // Events of type "x" and the subscription's reply fit both limits; a `lagged` notice with
    // a large count fits neither.
    let event = br#"{"Event":{"event_type":"x","data":1}}"#;
    let notice =
        format!(r#"{{"Event":{{"event_type":"lagged","data":{{"missed":{}}}}}}}"#, u64::MAX);
    let subscribed = br#"{"Success":{"message":"Subscribed to events"}}"#;
    for limit in [70, subscribed.len() + 2] {
        assert!(event.len() <= limit && subscribed.len() <= limit && notice.len() > limit);
        let bus = EventBus::with_capacity(1);
        let (mut read, mut write, served) =
            serve_over_pipe(&bus, 4096, FrameConfig::new().with_max_message_size(limit), None);
        let subscribe =
            IpcMessage::Subscribe { subscription: SubscriptionType::AllEvents { app_name: None } };
        write.write_all(&encoded(&subscribe)).await.expect("write");
        let mut frames = Frames::new();
        while frames.read_some(&mut read, 4096).await && frames.bytes.len() < 4 {}
        write.shutdown().await.expect("end of requests");
        while frames.read_some(&mut read, 4096).await {}
        let outcome = within("served", served).await.expect("task");
        match frames.take().as_slice() {
            // The refusal (or its shortest form) fits the limit: the connection goes on until
            // the client leaves.
            [IpcResponse::Error { message }] => {
                let expected = if limit == 70 { "frame limit" } else { "too large" };
                assert!(message.contains(expected), "limit {limit}: {message}");
                assert!(outcome.is_ok(), "{outcome:?}");
            }
            // Not even the refusal fits: the connection ends with a typed error.
            [] => assert!(
                matches!(outcome, Err(IpcError::FrameTooLarge { .. })),
                "limit {limit}: {outcome:?}"
            ),
            other => panic!(
                "limit {limit}: a subscription whose losses could not be reported: {other:?}"
            ),
        }
        assert_eq!(bus.subscriber_count(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_reply_comes_after_the_events_published_before_it_and_before_those_published_after() {
    let bus = EventBus::new();
    let (client, server) = tokio::io::duplex(1024);
    let conn: Connection<_, IpcMessage, IpcResponse> =
        Connection::with_config(server, FrameConfig::new(), 10 * TIMEOUT);
    let publisher = bus.clone();
    let handler = move |_: IpcMessage| {
        let bus = publisher.clone();
        async move {
            // More than the connection's output holds: the reply waits while they go out.
            for n in 0..200 {
                bus.publish("log_line", Some("web"), json!({ "n": n, "pad": "p".repeat(500) }));
            }
            bus.publish("log_line", Some("web"), json!("cause"));
            IpcResponse::Success { message: "done".into() }
        }
    };
    let served = {
        let bus = bus.clone();
        tokio::spawn(async move { bunctl_ipc::serve_connection(conn, &bus, &handler).await })
    };
    let (mut read, mut write) = tokio::io::split(client);
    subscribe_all(&mut read, &mut write).await;
    write.write_all(&encoded(&stop("request"))).await.expect("request");
    tokio::time::sleep(TIMEOUT / 10).await;
    // Published after the handler returned, while its reply still waits behind the backlog.
    bus.publish("log_line", Some("web"), json!("effect"));
    let mut frames = Frames::new();
    let mut seen = Vec::new();
    while !seen.iter().any(|s| s == "effect") {
        assert!(frames.read_some(&mut read, 4096).await, "closed");
        for frame in frames.take() {
            match frame {
                IpcResponse::Event { data, .. } if data.is_string() => {
                    seen.push(data.as_str().unwrap_or_default().to_owned())
                }
                IpcResponse::Event { .. } => {}
                other => seen.push(success(&other).unwrap_or("?").to_owned()),
            }
        }
    }
    assert_eq!(seen, ["cause", "done", "effect"], "cause, reply, effect");
    write.shutdown().await.expect("end");
    assert!(within("served", served).await.expect("task").is_ok());
}
