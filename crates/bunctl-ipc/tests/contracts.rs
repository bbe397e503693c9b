//! Regression tests for the contracts that must hold at the edges: reply pairing after timeouts
//! and cancellation, ownership across `into_framed` and `into_connection`, one deadline per
//! call, and streams that end after a fatal error. Deadlines run on tokio's paused clock.

mod common;

use std::time::Duration;

use bunctl_ipc::{
    ClientOptions, IpcClient, IpcConnection, IpcError, IpcMessage, IpcResponse, IpcServer,
    Operation, ServerOptions,
};
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;

fn stop(name: &str) -> IpcMessage {
    IpcMessage::Stop { name: name.into() }
}

/// A server whose connection answers each request with its echo, waiting `delay(i)` before
/// the reply to the `i`-th request (0-based).
async fn delayed_echo_server(
    ep: &Endpoint,
    delay: impl Fn(usize) -> Duration + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        conn.set_timeout(Duration::MAX);
        let mut i = 0;
        while let Ok(msg) = conn.recv().await {
            tokio::time::sleep(delay(i)).await;
            i += 1;
            if conn.send(&echoed(&msg)).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_request_never_hands_its_late_reply_to_the_next_request() {
    let ep = fresh_endpoint();
    // The first reply comes after 1.5 s: after the first request gave up (1 s), while the
    // second waits (from 1 s to 2 s).
    let _server =
        delayed_echo_server(
            &ep,
            |i| {
                if i == 0 { Duration::from_millis(1500) } else { Duration::ZERO }
            },
        )
        .await;
    let options = ClientOptions::new().with_timeout(Duration::from_secs(1));
    let mut client = IpcClient::connect_with(ep.path(), options).await.expect("connect");

    let e = client.request(&stop("first")).await.expect_err("the first reply is late");
    assert!(matches!(e, IpcError::Timeout { operation: Operation::Receive, .. }), "{e}");
    assert!(e.is_recoverable());
    assert_eq!(client.unanswered_requests(), 1);

    // The first reply arrives while the second request waits; it is not the second's reply.
    let reply = client.request(&stop("second")).await.expect("second");
    assert_eq!(reply, echoed(&stop("second")));
    assert_eq!(client.unanswered_requests(), 0);
    let third = client.request(&stop("third")).await.expect("third");
    assert_eq!(third, echoed(&stop("third")));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_future_never_hands_its_reply_to_the_next_request() {
    let ep = fresh_endpoint();
    let _server =
        delayed_echo_server(&ep, |i| if i == 0 { Duration::from_secs(5) } else { Duration::ZERO })
            .await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");

    // The request loses a select! against a shorter sleep; its future is dropped mid-wait.
    let abandoned = stop("abandoned");
    tokio::select! {
        _ = client.request(&abandoned) => panic!("the reply is 5 s late"),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
    assert_eq!(client.unanswered_requests(), 1);
    // An outer timeout drops another one.
    let timed = stop("timed");
    let outer = tokio::time::timeout(Duration::from_millis(10), client.request(&timed));
    // This one's reply is prompt, but it queues behind the first: the outer timeout wins.
    assert!(outer.await.is_err());
    assert_eq!(client.unanswered_requests(), 2);

    let reply = client.request(&stop("kept")).await.expect("kept");
    assert_eq!(reply, echoed(&stop("kept")));
    assert_eq!(client.unanswered_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn plain_recv_skips_replies_owed_to_abandoned_requests() {
    let ep = fresh_endpoint();
    let _server =
        delayed_echo_server(&ep, |i| if i == 0 { Duration::from_secs(5) } else { Duration::ZERO })
            .await;
    let options = ClientOptions::new().with_timeout(Duration::from_secs(1));
    let mut client = IpcClient::connect_with(ep.path(), options).await.expect("connect");
    assert!(client.request(&stop("late")).await.expect_err("late").is_timeout());
    client.send(&stop("plain")).await.expect("send");
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(client.recv().await.expect("recv"), echoed(&stop("plain")));
}

#[tokio::test(start_paused = true)]
async fn a_request_has_one_deadline_for_writing_and_for_its_reply() {
    const LIMIT: Duration = Duration::from_secs(10);
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let (got_it, received) = tokio::sync::oneshot::channel();
    let _server = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        conn.set_timeout(Duration::MAX);
        // Reads nothing for 90 % of the limit, so the request's send waits that long ...
        tokio::time::sleep(LIMIT.mul_f64(0.9)).await;
        let msg = conn.recv().await.expect("the whole request");
        let _ = got_it.send(());
        // ... and never answers.
        std::future::pending::<()>().await;
        drop((conn, msg));
    });
    let options = ClientOptions::new().with_timeout(LIMIT);
    let mut client = IpcClient::connect_with(ep.path(), options).await.expect("connect");
    // Much larger than a socket buffer: writing it must wait for the server.
    let big = IpcMessage::Start { name: "big".into(), config: "x".repeat(4 << 20) };
    let started = Instant::now();
    let e = client.request(&big).await.expect_err("no reply");
    let took = started.elapsed();
    assert!(matches!(e, IpcError::Timeout { operation: Operation::Receive, .. }), "{e}");
    received.await.expect("the server did get the request");
    assert!(
        took <= LIMIT + Duration::from_millis(50),
        "the request took {took:?}, limit {LIMIT:?}"
    );
}

#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn connect_with_retry_keeps_its_deadline_even_when_an_attempt_would_not() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let ep = fresh_endpoint();
    // A listener that never accepts, its queue full: a connect attempt waits for room (up to
    // the client's 30 s timeout) instead of failing.
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    listener.bind(&SockAddr::unix(ep.path()).expect("addr")).expect("bind");
    listener.listen(0).expect("listen");
    let mut queued = Vec::new();
    loop {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        match s.connect(&SockAddr::unix(ep.path()).expect("addr")) {
            Ok(()) => queued.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the queue: {e}"),
        }
        assert!(queued.len() < 10_000, "the queue never filled");
    }

    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let e = IpcClient::connect_with_retry(ep.path(), wait).await.expect_err("no room");
    let took = started.elapsed();
    assert!(e.is_timeout(), "{e}");
    assert!(took <= wait + Duration::from_millis(60), "connect_with_retry took {took:?}");

    // The options' own limits are kept too: a shorter timeout ends it sooner.
    let options =
        ClientOptions::new().with_timeout(Duration::from_millis(100)).with_wait_for_server(wait);
    let started = Instant::now();
    let e = IpcClient::connect_with(ep.path(), options).await.expect_err("no room");
    assert!(e.is_timeout(), "{e}");
    assert!(started.elapsed() <= Duration::from_millis(160), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn into_framed_keeps_the_slot_the_peer_and_the_poisoned_state() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind_with(ep.path(), ServerOptions::new().with_max_connections(1))
        .await
        .expect("bind");
    let mut first = IpcClient::connect(ep.path()).await.expect("first");
    let conn: IpcConnection = within("accept", server.accept()).await.expect("accept");
    let peer = conn.peer_credentials();
    assert!(peer.is_some());
    let mut framed = conn.into_framed();
    assert_eq!(framed.get_ref().peer_credentials(), peer, "credentials survive into_framed");
    assert!(!framed.get_ref().is_poisoned());
    assert_eq!(server.connection_count(), 1, "the Framed still holds the slot");

    // The slot is still taken: a second client is told the server is busy.
    let mut second = IpcClient::connect(ep.path()).await.expect("the socket accepts");
    let accept_again = tokio::spawn(async move {
        let conn = server.accept().await;
        (server, conn)
    });
    match within("busy", second.recv()).await.expect("busy reply") {
        IpcResponse::Error { message } => assert!(message.starts_with("server busy"), "{message}"),
        other => panic!("expected busy, got {other:?}"),
    }

    // The Framed works, and once it is dropped the slot is free for the next client.
    first.send(&IpcMessage::List).await.expect("send");
    assert_eq!(
        within("framed", framed.next()).await.expect("frame").expect("msg"),
        IpcMessage::List
    );
    framed.send(&IpcResponse::Success { message: "ok".into() }).await.expect("framed send");
    assert!(matches!(first.recv().await, Ok(IpcResponse::Success { .. })));
    drop(framed);
    let mut third = IpcClient::connect(ep.path()).await.expect("third");
    let (_server, conn) = within("accepted after the drop", accept_again).await.expect("task");
    let conn = conn.expect("accept");
    drop(conn);
    drop(third.send(&IpcMessage::List).await);
}

#[tokio::test]
async fn a_poisoned_connection_stays_poisoned_after_into_framed() {
    let (a, mut b) = tokio::io::duplex(16);
    let mut client: bunctl_ipc::Connection<_, IpcResponse, IpcMessage> =
        bunctl_ipc::Connection::new(a);
    client.set_timeout(Duration::from_millis(20));
    let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(100) };
    let e = client.send(&big).await.expect_err("the pipe holds 16 bytes");
    assert!(matches!(e, IpcError::Timeout { torn: true, .. }), "{e}");
    assert!(!e.is_recoverable());
    let mut framed = client.into_framed();
    assert!(framed.get_ref().is_poisoned());
    // Make room; the Framed must still refuse to write after a torn frame.
    let mut sink = vec![0u8; 16];
    tokio::io::AsyncReadExt::read_exact(&mut b, &mut sink).await.expect("read");
    assert!(framed.send(&IpcMessage::List).await.is_err(), "a poisoned stream accepted a write");
}

#[tokio::test]
async fn event_stream_ends_after_a_fatal_error_instead_of_repeating_it() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let _server = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        let _ = conn.recv().await;
        conn.send(&IpcResponse::Success { message: "Subscribed to events".into() }).await.ok();
        // An event far over the client's limit: its header alone breaks the stream.
        let big =
            IpcResponse::Event { event_type: "log_line".into(), data: "x".repeat(4096).into() };
        conn.send(&big).await.ok();
        std::future::pending::<()>().await;
    });
    let options = ClientOptions::new().with_max_message_size(1024);
    let mut client = IpcClient::connect_with(ep.path(), options).await.expect("connect");
    client
        .subscribe(bunctl_ipc::SubscriptionType::AllEvents { app_name: None })
        .await
        .expect("subscribe");
    let mut events = client.events();
    let first = within("error", events.next()).await;
    assert!(
        matches!(first, Some(Err(IpcError::FrameTooLarge { operation: Operation::Receive, .. }))),
        "{first:?}"
    );
    assert!(
        within("end", events.next()).await.is_none(),
        "the stream must end after a fatal error"
    );
    assert!(within("still ended", events.next()).await.is_none());
    assert!(within("a new stream", client.events().next()).await.is_none());
}

#[tokio::test]
async fn into_connection_reports_events_dropped_while_a_request_waited() {
    const SENT: usize = 5000;
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let _server = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        let msg = conn.recv().await.expect("request");
        // A flood of events before the reply: more than the client keeps.
        for i in 0..SENT {
            let event = IpcResponse::Event { event_type: "log_line".into(), data: i.into() };
            conn.send(&event).await.expect("event");
        }
        conn.send(&echoed(&msg)).await.expect("reply");
        std::future::pending::<()>().await;
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(
        within("reply", client.request(&IpcMessage::List)).await.expect("reply"),
        echoed(&IpcMessage::List)
    );
    let (_conn, held) = client.into_connection();
    let missed = held[0].missed().expect("a lagged notice comes first");
    assert_eq!(missed as usize + held.len() - 1, SENT, "kept + missed = sent");
    assert_eq!(held[1].data, serde_json::json!(missed), "the kept events follow the gap");
    assert_eq!(held.last().map(|e| e.data.clone()), Some(serde_json::json!(SENT - 1)));
}

#[tokio::test]
async fn a_send_over_the_limit_leaves_the_connection_usable() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let options = ClientOptions::new().with_max_message_size(64);
    let mut client = IpcClient::connect_with(ep.path(), options).await.expect("connect");
    let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(100) };
    let e = client.request(&big).await.expect_err("over the limit");
    assert!(matches!(e, IpcError::FrameTooLarge { operation: Operation::Send, .. }), "{e}");
    assert!(e.is_recoverable(), "nothing was written: {e}");
    assert_eq!(client.unanswered_requests(), 0);
    assert_eq!(client.request(&IpcMessage::List).await.expect("usable"), echoed(&IpcMessage::List));
}

#[tokio::test(start_paused = true)]
async fn a_send_timeout_that_withdrew_its_frame_is_recoverable() {
    let (a, b) = tokio::io::duplex(10);
    let mut client: bunctl_ipc::Connection<_, IpcResponse, IpcMessage> =
        bunctl_ipc::Connection::new(a);
    let mut server: bunctl_ipc::Connection<_, IpcMessage, IpcResponse> =
        bunctl_ipc::Connection::new(b);
    client.set_timeout(Duration::from_secs(1));
    client.send(&IpcMessage::List).await.expect("exactly fills the pipe");
    let e = client.send(&IpcMessage::List).await.expect_err("no room for one byte");
    assert!(matches!(e, IpcError::Timeout { torn: false, .. }), "{e}");
    assert!(e.is_recoverable(), "the frame was withdrawn: {e}");
    assert_eq!(server.recv().await.expect("first"), IpcMessage::List);
    let after = stop("after");
    let (sent, got) = tokio::join!(client.send(&after), server.recv());
    sent.expect("usable");
    assert_eq!(got.expect("after"), stop("after"));
}

#[tokio::test(start_paused = true)]
async fn the_idle_limit_never_cuts_a_frame_in_progress() {
    use tokio::io::AsyncWriteExt;
    let ep = fresh_endpoint();
    let options = ServerOptions::new()
        .with_timeout(Duration::from_secs(30))
        .with_idle_timeout(Duration::from_millis(300));
    let _daemon = serve_echo(&ep, options).await;
    let (mut conn, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let request = stop("trickled over a second and a half");
    let bytes = frame(&serde_json::to_vec(&request).expect("json"));
    let pause = Duration::from_millis(1500) / bytes.len() as u32;
    for b in &bytes {
        conn.get_mut().write_all(&[*b]).await.expect("the server must not cut the frame");
        tokio::time::sleep(pause).await;
    }
    conn.set_timeout(Duration::from_secs(5));
    assert_eq!(conn.recv().await.expect("reply"), echoed(&request));
    // Once idle again, the idle limit applies as before.
    let e = conn.recv().await.expect_err("idle");
    assert!(e.is_disconnect(), "{e}");
}

#[tokio::test]
async fn an_event_too_large_for_the_subscriber_is_announced_as_missed() {
    let ep = fresh_endpoint();
    let (bus, _daemon) = serve_echo(&ep, ServerOptions::new().with_max_message_size(1024)).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    client
        .subscribe(bunctl_ipc::SubscriptionType::AllEvents { app_name: None })
        .await
        .expect("subscribe");
    bus.publish("log_line", None, serde_json::json!("before"));
    bus.publish("log_line", None, serde_json::json!("x".repeat(2048)));
    bus.publish("log_line", None, serde_json::json!("x".repeat(2048)));
    bus.publish("log_line", None, serde_json::json!("after"));
    let mut got = Vec::new();
    while got.last().is_none_or(|e: &bunctl_ipc::Event| e.data != "after") {
        got.push(within("event", client.next_event()).await.expect("event"));
    }
    // The two undeliverable events are announced where they were (possibly as two notices,
    // if they went out in different batches), and nothing else is lost.
    assert_eq!(got[0].data, serde_json::json!("before"), "{got:?}");
    let missed: u64 = got[1..got.len() - 1].iter().map(|e| e.missed().expect("only notices")).sum();
    assert_eq!(missed, 2, "{got:?}");
}

#[tokio::test]
async fn an_undecodable_reply_takes_its_requests_place_and_the_next_request_gets_its_own() {
    use tokio::io::AsyncWriteExt;
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let _server = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        let _first = conn.recv().await.expect("first");
        // The reply to the first request is not JSON; the stream stays in sync.
        conn.get_mut().write_all(&frame(b"{not json")).await.expect("write");
        let second = conn.recv().await.expect("second");
        conn.send(&echoed(&second)).await.expect("reply");
        std::future::pending::<()>().await;
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let e = within("first", client.request(&stop("first"))).await.expect_err("garbled");
    assert!(matches!(e, IpcError::InvalidMessage(_)) && e.is_recoverable(), "{e}");
    assert_eq!(client.unanswered_requests(), 0, "the garbled frame was the first one's reply");
    let reply = within("second", client.request(&stop("second"))).await.expect("second");
    assert_eq!(reply, echoed(&stop("second")));
}
