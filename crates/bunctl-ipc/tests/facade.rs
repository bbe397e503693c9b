//! The brief's API over real endpoints (Unix sockets, or named pipes on Windows).

mod common;

use std::time::Duration;

use bunctl_ipc::{
    ClientOptions, Connection, IpcClient, IpcError, IpcMessage, IpcResponse, IpcServer,
    MAX_MESSAGE_SIZE, Operation, ServerOptions,
};
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// A `Start` whose JSON payload is exactly `size` bytes.
fn start_of_payload_size(size: usize) -> IpcMessage {
    let overhead = br#"{"Start":{"name":"a","config":""}}"#.len();
    IpcMessage::Start { name: "a".into(), config: "x".repeat(size - overhead) }
}

#[tokio::test]
async fn every_message_type_round_trips_over_a_real_endpoint() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    for msg in all_messages() {
        assert_eq!(within("reply", client.request(&msg)).await.expect("request"), echoed(&msg));
    }
}

#[tokio::test]
async fn every_response_type_round_trips_over_a_real_endpoint() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let responses = vec![
        IpcResponse::Success { message: "ok".into() },
        IpcResponse::Error { message: "nope".into() },
        IpcResponse::Data { data: json!({"apps": [{"name": "web", "pid": 1234}], "n": 1.5}) },
        IpcResponse::Event { event_type: "log_line".into(), data: json!({"line": "hi"}) },
    ];
    let expected = responses.clone();
    let srv = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        for r in &responses {
            conn.send(r).await.expect("send");
        }
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    for r in expected {
        assert_eq!(within("recv", client.recv()).await.expect("recv"), r);
    }
    srv.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_1_mib_and_of_exactly_max_size_arrive_intact() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let one_mib = start_of_payload_size(1 << 20);
    assert_eq!(within("1 MiB", client.request(&one_mib)).await.expect("1 MiB"), echoed(&one_mib));

    // The echo of a MAX-sized message would be larger than MAX: check receipt with a server
    // that answers with the size it got.
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        let msg = conn.recv().await.expect("max-size message");
        let size = serde_json::to_vec(&msg).expect("json").len();
        conn.send(&IpcResponse::Data { data: json!(size) }).await.expect("send");
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let reply = within("max", client.request(&start_of_payload_size(MAX_MESSAGE_SIZE))).await;
    assert_eq!(reply.expect("max"), IpcResponse::Data { data: json!(MAX_MESSAGE_SIZE) });
}

#[tokio::test]
async fn oversize_message_is_refused_on_send_and_the_connection_stays_usable() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let e = client.send(&start_of_payload_size(MAX_MESSAGE_SIZE + 1)).await.expect_err("too big");
    assert!(matches!(e, IpcError::FrameTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("exceeds maximum allowed size"));
    // Nothing reached the wire: the next request gets its own reply.
    assert_eq!(client.request(&IpcMessage::List).await.expect("next"), echoed(&IpcMessage::List));
}

#[tokio::test]
async fn smaller_configured_limit_is_enforced_by_the_receiver() {
    let ep = fresh_endpoint();
    let options = ServerOptions::new().with_max_message_size(64);
    let mut server = IpcServer::bind_with(ep.path(), options).await.expect("bind");
    let srv = tokio::spawn(async move {
        let mut conn = server.accept().await.expect("accept");
        conn.recv().await
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    client.send(&start_of_payload_size(65)).await.expect("client allows it");
    let got = within("server", srv).await.expect("task");
    assert!(
        matches!(
            got,
            Err(IpcError::FrameTooLarge { size: 65, max: 64, operation: Operation::Receive })
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn peer_claiming_4_gib_is_rejected_and_other_clients_are_served() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut hostile = server.accept().await.expect("accept");
        let _ = tx.send(hostile.recv().await);
        drop(hostile);
        echo(server.accept().await.expect("accept")).await;
    });
    let (raw, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let mut raw = raw;
    raw.get_mut().write_all(&u32::MAX.to_le_bytes()).await.expect("write header");
    let got = within("hostile", rx).await.expect("result");
    assert!(matches!(got, Err(IpcError::FrameTooLarge { size: 0xffff_ffff, .. })), "{got:?}");

    let mut good = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(good.request(&IpcMessage::List).await.expect("served"), echoed(&IpcMessage::List));
}

#[tokio::test(start_paused = true)]
async fn receive_timeout_is_reported_and_the_connection_stays_usable() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    client.set_timeout(Duration::from_millis(50));
    let e = client.recv().await.expect_err("nothing to receive");
    assert!(matches!(e, IpcError::Timeout { .. }) && e.to_string().contains("timeout"), "{e}");
    assert_eq!(e.to_string(), "receive timeout after 50ms");
    client.set_timeout(PATIENCE);
    assert_eq!(client.request(&IpcMessage::List).await.expect("usable"), echoed(&IpcMessage::List));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_are_all_served() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let path = ep.path().to_owned();
        tasks.push(tokio::spawn(async move {
            let mut client = IpcClient::connect(&path).await.expect("connect");
            for j in 0..5 {
                let msg = IpcMessage::Stop { name: format!("app-{i}-{j}") };
                assert_eq!(client.request(&msg).await.expect("reply"), echoed(&msg));
            }
        }));
    }
    for t in tasks {
        within("client", t).await.expect("client task");
    }
}

#[tokio::test]
async fn server_going_away_is_closed_for_the_client() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let srv = tokio::spawn(async move {
        let conn = server.accept().await.expect("accept");
        drop(conn);
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    srv.await.expect("server task");
    let e = within("recv", client.recv()).await.expect_err("closed");
    assert!(matches!(e, IpcError::Closed), "{e}");
    assert!(e.is_disconnect());
}

#[tokio::test]
async fn client_leaving_between_frames_is_closed_and_mid_frame_is_truncated() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        for _ in 0..2 {
            let mut conn = server.accept().await.expect("accept");
            let first = conn.recv().await;
            let second = conn.recv().await;
            tx.send((first, second)).await.expect("report");
        }
    });

    let mut clean = IpcClient::connect(ep.path()).await.expect("connect");
    clean.send(&IpcMessage::List).await.expect("send");
    drop(clean);
    let (first, second) = within("clean", rx.recv()).await.expect("report");
    assert_eq!(first.expect("first"), IpcMessage::List);
    assert!(matches!(second, Err(IpcError::Closed)), "{second:?}");

    let (mut raw, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    raw.get_mut().write_all(b"\x06\x00\x00\x00\"List\"\x10\x00\x00\x00{\"Stop\"").await.expect("w");
    raw.get_mut().flush().await.expect("flush");
    drop(raw);
    let (first, second) = within("cut", rx.recv()).await.expect("report");
    assert_eq!(first.expect("first"), IpcMessage::List);
    assert!(
        matches!(second, Err(IpcError::Truncated { received: 11, expected: 20 })),
        "{second:?}"
    );
}

#[tokio::test]
async fn garbage_and_empty_frames_are_errors_and_the_next_message_works() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let (mut conn, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let mut wire = Vec::new();
    for payload in [&b"{not json"[..], b"\xff\xfe\xfd", br#"{"Stop":{"nom":"x"}}"#, b""] {
        wire.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        wire.extend_from_slice(payload);
    }
    conn.get_mut().write_all(&wire).await.expect("write garbage");
    for expected in ["invalid message", "invalid message", "invalid message", "empty frame"] {
        match within("error reply", conn.recv()).await.expect("reply") {
            IpcResponse::Error { message } => assert!(message.contains(expected), "{message}"),
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
    conn.send(&IpcMessage::List).await.expect("send");
    assert_eq!(within("next", conn.recv()).await.expect("next"), echoed(&IpcMessage::List));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_cancelled_mid_frame_loses_no_bytes() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let msgs = all_messages();
    let sent = msgs.clone();
    // The writer sends one byte per poll of the reader (it waits for the reader's word that
    // it has polled since), so the reader sees frames arrive in pieces however the threads are
    // scheduled.
    let (polled_tx, mut polled_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let writer = tokio::spawn(async move {
        let (mut raw, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
        for m in &sent {
            let mut frame = Vec::new();
            ipc_proto_frame(m, &mut frame);
            for b in frame {
                polled_rx.recv().await.expect("reader alive");
                raw.get_mut().write_all(&[b]).await.expect("byte");
                raw.get_mut().flush().await.expect("flush");
            }
        }
        // Keep the endpoint alive until the reader is done.
        let _ = raw.recv().await;
    });
    let mut conn = within("accept", server.accept()).await.expect("accept");
    let mut got = Vec::new();
    let mut cancellations = 0u32;
    // Every `recv` gets exactly one poll; whenever that is not enough it is dropped and a new
    // one started, so frames are assembled across many cancelled futures.
    within("all messages", async {
        while got.len() < msgs.len() {
            tokio::select! {
                biased;
                m = conn.recv() => got.push(m.expect("message")),
                _ = tokio::task::yield_now() => cancellations += 1,
            }
            // The writer may have stopped listening: it is done.
            let _ = polled_tx.send(());
        }
    })
    .await;
    assert_eq!(got, msgs);
    assert!(cancellations > 0, "the test never cancelled a recv");
    drop(conn);
    within("writer", writer).await.expect("writer");
}

/// Encodes one frame with the blocking helper (the test writes it byte by byte).
fn ipc_proto_frame(m: &IpcMessage, out: &mut Vec<u8>) {
    bunctl_ipc::proto::blocking::write_message(out, m).expect("encode");
}

#[tokio::test(start_paused = true)]
async fn send_timing_out_part_way_poisons_the_connection() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let conn = server.accept().await.expect("accept");
        // Never read; keep the connection open until the test is done.
        let _ = hold_rx.await;
        drop(conn);
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    client.set_timeout(Duration::from_millis(200));
    let big = start_of_payload_size(8 << 20);
    let e = client.send(&big).await.expect_err("cannot all be written");
    assert!(matches!(e, IpcError::Timeout { torn: true, .. }) && !e.is_recoverable(), "{e}");
    let again = client.send(&IpcMessage::List).await.expect_err("poisoned");
    assert!(matches!(again, IpcError::Poisoned), "{again}");
    let _ = hold_tx.send(());
}

#[tokio::test]
async fn connecting_where_no_server_runs_says_not_running_and_names_the_path() {
    let ep = fresh_endpoint();
    let e = IpcClient::connect(ep.path()).await.expect_err("nobody there");
    assert!(matches!(e, IpcError::NotRunning { .. }), "{e}");
    assert!(e.to_string().contains(&ep.path().display().to_string()), "{e}");
}

#[tokio::test(start_paused = true)]
async fn connect_with_retry_waits_for_a_server_that_starts_late() {
    let ep = fresh_endpoint();
    let path = ep.path().to_owned();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let client = tokio::spawn(async move {
        let _ = started_tx.send(());
        IpcClient::connect_with_retry(&path, PATIENCE).await
    });
    started_rx.await.expect("client started");
    // The client is already retrying; now the server appears.
    let _server = echo_server(&ep).await;
    let mut client = within("retry", client).await.expect("task").expect("connected");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));

    let nobody = fresh_endpoint();
    let e = IpcClient::connect_with_retry(nobody.path(), Duration::from_millis(50)).await;
    assert!(matches!(e, Err(IpcError::NotRunning { .. })), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_read_and_write_from_two_tasks() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let srv = tokio::spawn(async move {
        let conn = server.accept().await.expect("accept");
        let (mut rx, mut tx) = conn.split();
        let pusher = tokio::spawn(async move {
            for i in 0..100 {
                let ev = IpcResponse::Event { event_type: "tick".into(), data: json!(i) };
                tx.send(&ev).await.expect("push");
            }
            tx
        });
        let first = rx.recv().await.expect("request");
        let mut tx = pusher.await.expect("pusher");
        tx.send(&IpcResponse::Success { message: format!("{first:?}") }).await.expect("reply");
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let reply = within("request", client.request(&IpcMessage::List)).await.expect("reply");
    assert_eq!(reply, IpcResponse::Success { message: "List".into() });
    for i in 0..100 {
        let ev = within("event", client.next_event()).await.expect("event");
        assert_eq!((ev.event_type.as_str(), ev.data), ("tick", json!(i)));
    }
    srv.await.expect("server");
}

#[tokio::test]
async fn into_framed_speaks_the_same_protocol() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let (conn, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let mut framed = conn.into_framed();
    framed.send(&IpcMessage::List).await.expect("send");
    let reply = within("reply", framed.next()).await.expect("frame").expect("ok");
    assert_eq!(reply, echoed(&IpcMessage::List));
}

#[tokio::test]
async fn connection_is_a_stream_and_a_sink() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let (mut conn, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let msgs = all_messages();
    // Pipelined: all frames queued, one flush.
    for m in &msgs {
        conn.feed(m).await.expect("feed");
    }
    conn.flush().await.expect("flush");
    let replies: Vec<_> = within("replies", (&mut conn).take(msgs.len()).collect::<Vec<_>>()).await;
    let replies: Vec<_> = replies.into_iter().map(|r| r.expect("reply")).collect();
    assert_eq!(replies, msgs.iter().map(echoed).collect::<Vec<_>>());
}

#[tokio::test]
async fn client_options_apply_to_the_connection() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let opts =
        ClientOptions::new().with_timeout(Duration::from_millis(1234)).with_max_message_size(100);
    let mut client = IpcClient::connect_with(ep.path(), opts).await.expect("connect");
    assert_eq!(client.timeout(), Duration::from_millis(1234));
    let e = client.send(&start_of_payload_size(101)).await.expect_err("over the client limit");
    assert!(matches!(e, IpcError::FrameTooLarge { max: 100, .. }), "{e}");
}

#[tokio::test]
async fn server_and_client_know_each_others_process() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let srv =
        tokio::spawn(async move { server.accept().await.expect("accept").peer_credentials() });
    let client = IpcClient::connect(ep.path()).await.expect("connect");
    let seen_by_server = within("accept", srv).await.expect("task").expect("credentials");
    let seen_by_client = client.peer_credentials().expect("credentials");
    assert_eq!(seen_by_server.pid, Some(std::process::id()));
    assert_eq!(seen_by_client.pid, Some(std::process::id()));
}

#[test]
fn default_socket_path_is_per_user() {
    let p = bunctl_ipc::default_socket_path();
    let s = p.display().to_string();
    if cfg!(unix) {
        assert!(s.ends_with("bunctl.sock"), "{s}");
        assert_ne!(s, "/tmp/bunctl.sock", "must not be shared by all users");
    } else {
        // Named after the user's SID, which another account cannot take.
        assert!(s.starts_with(r"\\.\pipe\bunctl_S-1-5-"), "{s}");
    }
}

#[allow(dead_code)]
fn connection_is_generic_over_the_stream(
    s: tokio::io::DuplexStream,
) -> Connection<tokio::io::DuplexStream, IpcMessage, IpcResponse> {
    Connection::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_over_the_connection_limit_is_told_busy_and_others_are_unaffected() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind_with(ep.path(), ServerOptions::new().with_max_connections(2))
        .await
        .expect("bind");
    tokio::spawn(async move {
        while let Ok(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    });
    let mut first = IpcClient::connect(ep.path()).await.expect("first");
    let mut second = IpcClient::connect(ep.path()).await.expect("second");
    assert_eq!(first.request(&IpcMessage::List).await.expect("1"), echoed(&IpcMessage::List));
    assert_eq!(second.request(&IpcMessage::List).await.expect("2"), echoed(&IpcMessage::List));

    let mut third = IpcClient::connect(ep.path()).await.expect("the socket still accepts");
    match within("busy", third.recv()).await.expect("busy reply") {
        IpcResponse::Error { message } => assert!(message.starts_with("server busy"), "{message}"),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(matches!(within("close", third.recv()).await, Err(IpcError::Closed)));
    // Existing clients carry on.
    assert_eq!(first.request(&IpcMessage::List).await.expect("1"), echoed(&IpcMessage::List));

    // Once a slot frees up, a newcomer is served.
    drop(second);
    let served = within("slot frees", async {
        loop {
            let mut c = IpcClient::connect(ep.path()).await.expect("connect");
            if let Ok(reply @ IpcResponse::Success { .. }) = c.request(&IpcMessage::List).await {
                return reply;
            }
        }
    })
    .await;
    assert_eq!(served, echoed(&IpcMessage::List));
}

#[tokio::test]
async fn a_handler_can_see_who_is_asking_and_closures_still_work() {
    use bunctl_ipc::{EventBus, Handler, RequestContext};
    struct WhoAsks;
    impl Handler for WhoAsks {
        async fn handle(&self, _: IpcMessage) -> IpcResponse {
            IpcResponse::Error { message: "handle_request is what serve calls".into() }
        }
        async fn handle_request(&self, context: RequestContext, _: IpcMessage) -> IpcResponse {
            IpcResponse::Data { data: json!({ "pid": context.peer.and_then(|p| p.pid) }) }
        }
    }
    let ep = fresh_endpoint();
    let server = IpcServer::bind(ep.path()).await.expect("bind");
    let _daemon = tokio::spawn(bunctl_ipc::serve(server, EventBus::new(), WhoAsks));
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    let reply = client.request(&IpcMessage::List).await.expect("reply");
    assert_eq!(reply, IpcResponse::Data { data: json!({ "pid": std::process::id() }) });

    // A plain closure is still a handler.
    let other = fresh_endpoint();
    let server = IpcServer::bind(other.path()).await.expect("bind");
    let closure = |m: IpcMessage| async move { echoed(&m) };
    let _daemon = tokio::spawn(bunctl_ipc::serve(server, EventBus::new(), closure));
    let mut client = IpcClient::connect(other.path()).await.expect("connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
}
