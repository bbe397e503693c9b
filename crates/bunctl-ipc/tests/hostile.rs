//! A daemon's front door under hostile or broken clients: it must stay up, keep serving
//! others, and never lose or reorder a reply.

mod common;

use std::time::Duration;

use bunctl_ipc::{IpcClient, IpcError, IpcMessage, IpcResponse, ServerOptions};
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_replies_and_the_connection_keeps_working() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new()).await;
    let mut conn = raw_client(&ep).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: [(&str, Vec<u8>); 5] = [
        ("invalid JSON", frame(b"{\"Stop\":")),
        ("invalid UTF-8", frame(b"\"\xff\xfe\"")),
        ("wrong shape", frame(br#"{"Stop":{"name":42}}"#)),
        ("nested 10,000 deep", frame(deep.as_bytes())),
        ("zero length", frame(b"")),
    ];
    for (what, bytes) in cases {
        conn.get_mut().write_all(&bytes).await.expect("write");
        match within(what, conn.recv()).await.expect("a reply") {
            IpcResponse::Error { message } => assert!(!message.is_empty(), "{what}"),
            other => panic!("{what}: expected an Error reply, got {other:?}"),
        }
        // Framing is intact: the same connection still answers a real request.
        conn.send(&IpcMessage::List).await.expect("send");
        assert_eq!(
            within(what, conn.recv()).await.expect("reply"),
            echoed(&IpcMessage::List),
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_header_gets_an_error_then_close_and_others_are_served() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new()).await;
    let mut hostile = raw_client(&ep).await;
    hostile.get_mut().write_all(&u32::MAX.to_le_bytes()).await.expect("write");
    match within("error", hostile.recv()).await.expect("reply") {
        IpcResponse::Error { message } => {
            assert!(message.contains("exceeds maximum allowed size"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(matches!(within("close", hostile.recv()).await, Err(IpcError::Closed)));

    let mut good = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(good.request(&IpcMessage::List).await.expect("served"), echoed(&IpcMessage::List));
}

#[tokio::test(start_paused = true)]
async fn slowloris_is_closed_when_its_timeout_runs_out_while_fifty_others_are_served() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new().with_timeout(Duration::from_secs(1))).await;

    let slow_path = ep.path().to_owned();
    let slow = tokio::spawn(async move {
        let (mut conn, _) =
            IpcClient::connect(&slow_path).await.expect("connect").into_connection();
        let frame = frame(br#"{"Stop":{"name":"trickle-trickle"}}"#);
        // One byte every 200 ms would take ~8 s for this frame; the server allows 1 s.
        for (sent, b) in frame.iter().enumerate() {
            if conn.get_mut().write_all(&[*b]).await.is_err() {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // All written: the server must have closed without answering.
        match conn.recv().await {
            Ok(reply) => panic!("a trickled frame was answered: {reply:?}"),
            Err(_) => frame.len(),
        }
    });

    let mut others = Vec::new();
    for i in 0..50 {
        let path = ep.path().to_owned();
        others.push(tokio::spawn(async move {
            let mut c = IpcClient::connect(&path).await.expect("connect");
            for j in 0..5 {
                let msg = IpcMessage::Restart { name: format!("{i}-{j}") };
                assert_eq!(c.request(&msg).await.expect("served"), echoed(&msg));
            }
        }));
    }
    for o in others {
        within("other client", o).await.expect("served meanwhile");
    }
    let sent = within("slow client", slow).await.expect("slow task");
    assert!(sent < 20, "the trickling connection was closed only after {sent} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_do_not_starve_a_new_client() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new().with_max_connections(2000)).await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(raw_client(&ep).await);
    }
    let mut fresh = IpcClient::connect(ep.path()).await.expect("connect");
    let reply = within("fresh client", fresh.request(&IpcMessage::List)).await.expect("reply");
    assert_eq!(reply, echoed(&IpcMessage::List));
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_past_the_cap_is_told_busy_and_served_once_others_leave() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new().with_max_connections(100)).await;
    let mut hundred = Vec::new();
    for _ in 0..100 {
        let mut c = IpcClient::connect(ep.path()).await.expect("connect");
        // A reply proves the server holds a slot for this client.
        c.request(&IpcMessage::List).await.expect("served");
        hundred.push(c);
    }
    let mut extra = IpcClient::connect(ep.path()).await.expect("connect");
    match within("busy", extra.recv()).await.expect("a reply") {
        IpcResponse::Error { message } => assert!(message.starts_with("server busy"), "{message}"),
        other => panic!("expected busy, got {other:?}"),
    }
    hundred.truncate(50);
    let reply = within("served after others left", async {
        loop {
            let mut c = IpcClient::connect(ep.path()).await.expect("connect");
            match c.request(&IpcMessage::List).await {
                Ok(r @ IpcResponse::Success { .. }) => return r,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert_eq!(reply, echoed(&IpcMessage::List));
    // The ones that stayed were never disturbed.
    for c in &mut hundred {
        assert_eq!(
            c.request(&IpcMessage::List).await.expect("still served"),
            echoed(&IpcMessage::List)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_breaking_off_mid_frame_in_numbers_do_not_disturb_the_server() {
    let ep = fresh_endpoint();
    let _daemon = serve_echo(&ep, ServerOptions::new()).await;
    let whole = frame(br#"{"Stop":{"name":"web"}}"#);
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let path = ep.path().to_owned();
        let whole = whole.clone();
        tasks.push(tokio::spawn(async move {
            let (mut conn, _) = IpcClient::connect(&path).await.expect("connect").into_connection();
            // Cut inside the header, inside the body, or right after a request (no read).
            let cut = match i % 3 {
                0 => 1 + i % 3,
                1 => 4 + i % (whole.len() - 4),
                _ => whole.len(),
            };
            let _ = conn.get_mut().write_all(&whole[..cut]).await;
            drop(conn);
        }));
    }
    for t in tasks {
        within("breaker", t).await.expect("task");
    }
    let mut good = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(good.request(&IpcMessage::List).await.expect("served"), echoed(&IpcMessage::List));
}

/// An echo server with a 1 s timeout, and a raw client connection subscribed to every event
/// (the bus has seen the subscription). The endpoint and the server task live as long as the
/// values returned.
async fn subscribed_with_a_one_second_timeout() -> (
    Endpoint,
    bunctl_ipc::EventBus,
    tokio::task::JoinHandle<bunctl_ipc::Result<()>>,
    bunctl_ipc::ClientConnection,
) {
    let ep = fresh_endpoint();
    let options = ServerOptions::new().with_timeout(Duration::from_secs(1));
    let (bus, daemon) = serve_echo(&ep, options).await;
    let (mut conn, _) = IpcClient::connect(ep.path()).await.expect("connect").into_connection();
    let subscribe = IpcMessage::Subscribe {
        subscription: bunctl_ipc::SubscriptionType::AllEvents { app_name: None },
    };
    conn.send(&subscribe).await.expect("subscribe");
    assert!(matches!(conn.recv().await.expect("reply"), IpcResponse::Success { .. }));
    within("subscribed", async {
        while bus.subscriber_count() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    (ep, bus, daemon, conn)
}

#[tokio::test(start_paused = true)]
async fn subscribed_client_trickling_a_frame_is_closed_when_its_timeout_runs_out() {
    let (_ep, _bus, _daemon, mut conn) = subscribed_with_a_one_second_timeout().await;

    // Listening alone is fine; a frame started and never finished is not.
    let frame = frame(br#"{"Stop":{"name":"never-finished"}}"#);
    let mut sent = 0;
    let closed = within("closed", async {
        for b in &frame {
            if conn.get_mut().write_all(&[*b]).await.is_err() {
                return true;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    })
    .await;
    // Either a write failed, or the server's close shows up as the end of the stream.
    let ended = closed || matches!(conn.recv().await, Err(e) if e.is_disconnect());
    assert!(ended && sent < frame.len(), "trickling subscriber not closed ({sent} bytes sent)");
}

#[tokio::test(start_paused = true)]
async fn events_written_meanwhile_do_not_extend_the_time_a_started_frame_has() {
    let (_ep, bus, _daemon, mut conn) = subscribed_with_a_one_second_timeout().await;

    // Every 100 ms an event goes out to this client while it trickles a frame, one byte per
    // 200 ms: the frame still has only the 1 s limit from its first byte.
    let frame = frame(br#"{"Stop":{"name":"never-finished-either"}}"#);
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    let closed = within("closed", async {
        for b in &frame {
            if conn.get_mut().write_all(&[*b]).await.is_err() {
                return true;
            }
            sent += 1;
            for _ in 0..2 {
                bus.publish("log_line", Some("web"), serde_json::json!({"line": sent}));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        false
    })
    .await;
    let ended = closed
        || loop {
            match conn.recv().await {
                Ok(_) => continue,
                Err(e) => break e.is_disconnect(),
            }
        };
    assert!(ended && sent < frame.len(), "trickling subscriber not closed ({sent} bytes sent)");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn idle_limit_closes_silent_clients_but_not_listening_subscribers() {
    let ep = fresh_endpoint();
    let options = ServerOptions::new()
        .with_timeout(Duration::from_secs(30))
        .with_idle_timeout(Duration::from_millis(200));
    let (bus, _daemon) = serve_echo(&ep, options).await;

    let mut silent = IpcClient::connect(ep.path()).await.expect("connect");
    let mut listener = IpcClient::connect(ep.path()).await.expect("connect");
    listener
        .subscribe(bunctl_ipc::SubscriptionType::AllEvents { app_name: None })
        .await
        .expect("subscribe");

    // The silent client is closed by the idle limit, not the 30 s operation timeout.
    let e = within("idle close", silent.recv()).await.expect_err("closed");
    assert!(e.is_disconnect(), "{e}");

    // The subscriber, just as silent for longer than the idle limit, still gets events.
    bus.publish("log_line", Some("web"), serde_json::json!({"app": "web", "line": "still here"}));
    let event = within("event", listener.next_event()).await.expect("event");
    assert_eq!(event.data["line"], "still here");
}
