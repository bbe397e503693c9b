//! Protocol 1 over real endpoints: `Hello`, `Follow` (history, cursors, resets) against `serve`,
//! and both kinds of old server against the client. No test sleeps to synchronize: each waits
//! on a reply, an event or a task, under a deadline.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bunctl_ipc::event_types::{LAGGED, LOG_LINE, RESET};
use bunctl_ipc::{
    BusOptions, Cursor, Event, EventBus, Follow, IpcClient, IpcError, IpcMessage, IpcResponse,
    IpcServer, SubscriptionType, serve,
};
use common::{Endpoint, fresh_endpoint, within};
use futures::StreamExt;
use serde_json::json;

fn logs(app: &str) -> SubscriptionType {
    SubscriptionType::LogEvents { app_name: Some(app.into()) }
}

fn all() -> SubscriptionType {
    SubscriptionType::AllEvents { app_name: None }
}

async fn answer(message: IpcMessage) -> IpcResponse {
    IpcResponse::Success { message: format!("{message:?}") }
}

/// `serve` with `bus` at a fresh endpoint, until the test ends.
async fn serving(bus: &EventBus) -> Endpoint {
    let endpoint = fresh_endpoint();
    let server = IpcServer::bind(endpoint.path()).await.expect("bind");
    tokio::spawn(serve(server, bus.clone(), answer));
    endpoint
}

fn publish_lines(bus: &EventBus, app: &str, lines: std::ops::Range<u32>) {
    for n in lines {
        bus.publish(LOG_LINE, Some(app), json!({ "app": app, "line": format!("line-{n}") }));
    }
}

async fn next(client: &mut IpcClient) -> Event {
    within("an event", client.next_event()).await.expect("event")
}

fn line(event: &Event) -> String {
    event.data["line"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn hello_says_who_the_server_is_and_how_it_is_doing() {
    let bus = EventBus::new();
    publish_lines(&bus, "web", 0..3);
    let endpoint = serving(&bus).await;
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    let info = within("hello", client.hello()).await.expect("hello");
    assert_eq!(info.protocol, bunctl_ipc::PROTOCOL_VERSION);
    assert_eq!(info.server, format!("bunctl-ipc {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(info.instance, bus.instance());
    assert_eq!((info.seq, info.published), (3, 3));
    assert!(info.supports("follow"));
    assert_eq!(info.connections, Some(1));
    assert_eq!(info.pid, Some(std::process::id()));
    assert_eq!(client.server_info(), Some(&info));
    // The connection goes on as before.
    let reply = client.request(&IpcMessage::List).await.expect("list");
    assert_eq!(reply, IpcResponse::Success { message: "List".into() });
}

#[tokio::test]
async fn follow_with_history_gives_the_last_lines_then_live_ones_once_each() {
    let bus = EventBus::new();
    publish_lines(&bus, "web", 0..10);
    publish_lines(&bus, "api", 0..10);
    let endpoint = serving(&bus).await;
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("follow", client.follow(Follow::history(logs("web"), 4))).await.expect("follow");
    let boundary = Cursor { instance: bus.instance().into(), seq: 20 };
    assert_eq!(client.cursor(), Some(&boundary), "the boundary before the first event");
    publish_lines(&bus, "web", 10..12);
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(line(&next(&mut client).await));
    }
    let want: Vec<String> = (6..12).map(|n| format!("line-{n}")).collect();
    assert_eq!(seen, want);
    let cursor = client.cursor().expect("a cursor").clone();
    assert_eq!(cursor, Cursor { instance: bus.instance().into(), seq: 22 });
}

#[tokio::test]
async fn a_cursor_resumes_on_another_connection_with_nothing_repeated_or_missed() {
    let bus = EventBus::new();
    let endpoint = serving(&bus).await;
    let mut first = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("follow", first.follow(Follow::live(logs("web")))).await.expect("follow");
    let live_start = first.cursor().expect("live following has a place").clone();
    assert_eq!(live_start.seq, 0);
    publish_lines(&bus, "web", 0..5);
    for _ in 0..3 {
        next(&mut first).await;
    }
    let cursor = first.cursor().expect("cursor").clone();
    assert_eq!(cursor.seq, 3);
    drop(first);
    publish_lines(&bus, "web", 5..7);
    let mut second = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("resume", second.follow(Follow::after(logs("web"), &cursor))).await.expect("resume");
    let mut lines = Vec::new();
    for _ in 0..4 {
        lines.push(line(&next(&mut second).await));
    }
    assert_eq!(lines, ["line-3", "line-4", "line-5", "line-6"]);
    assert_eq!(second.cursor().map(|c| c.seq), Some(7));
}

#[tokio::test]
async fn events_no_longer_kept_are_named_exactly_before_the_rest() {
    let bus = EventBus::with_options(BusOptions::new().with_retained_events(3));
    let endpoint = serving(&bus).await;
    publish_lines(&bus, "web", 0..10); // positions 1..=10; 1..=7 forgotten
    let cursor = Cursor { instance: bus.instance().into(), seq: 0 };
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("resume", client.follow(Follow::after(logs("web"), &cursor))).await.expect("resume");
    let notice = next(&mut client).await;
    assert_eq!(notice.event_type, LAGGED);
    assert_eq!((notice.missed(), notice.lost_range()), (Some(7), Some(1..=7)));
    assert_eq!(client.cursor().map(|c| c.seq), Some(0), "notices do not move the cursor");
    let rest: Vec<Option<u64>> = vec![
        next(&mut client).await.seq(),
        next(&mut client).await.seq(),
        next(&mut client).await.seq(),
    ];
    assert_eq!(rest, [Some(8), Some(9), Some(10)]);
}

#[tokio::test]
async fn a_cursor_among_forgotten_events_is_over_counted_never_under() {
    let bus = EventBus::with_options(BusOptions::new().with_retained_events(3));
    let endpoint = serving(&bus).await;
    publish_lines(&bus, "web", 0..10);
    let cursor = Cursor { instance: bus.instance().into(), seq: 4 };
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("resume", client.follow(Follow::after(logs("web"), &cursor))).await.expect("resume");
    let notice = next(&mut client).await;
    // 5..=7 were lost; the bus no longer knows which of 1..=7 came after 4.
    let range = notice.lost_range().expect("range");
    assert!(*range.start() <= 5 && *range.end() == 7, "{range:?}");
    assert!(notice.missed().expect("missed") >= 3);
    assert_eq!(next(&mut client).await.seq(), Some(8));
}

#[tokio::test]
async fn a_cursor_of_a_restarted_daemon_gets_a_reset_then_the_new_buses_events() {
    let old = EventBus::new();
    publish_lines(&old, "web", 0..50);
    let cursor = Cursor { instance: old.instance().into(), seq: 50 };
    let bus = EventBus::new();
    publish_lines(&bus, "web", 0..2);
    let endpoint = serving(&bus).await;
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    within("resume", client.follow(Follow::after(logs("web"), &cursor))).await.expect("resume");
    assert_eq!(client.cursor(), Some(&cursor), "the old cursor stands until the reset");
    let reset = next(&mut client).await;
    assert_eq!(reset.event_type, RESET);
    assert_eq!(reset.data["instance"], bus.instance());
    assert_eq!(client.cursor(), Some(&Cursor { instance: bus.instance().into(), seq: 0 }));
    assert_eq!(line(&next(&mut client).await), "line-0");
    assert_eq!(line(&next(&mut client).await), "line-1");
    assert_eq!(client.cursor(), Some(&Cursor { instance: bus.instance().into(), seq: 2 }));
}

#[tokio::test]
async fn history_and_a_cursor_together_are_refused_and_the_connection_goes_on() {
    let bus = EventBus::new();
    let endpoint = serving(&bus).await;
    let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
    let mut both = Follow::history(logs("web"), 3);
    both.after = Some(1);
    let refused = within("follow", client.follow(both)).await.map(|_| ());
    assert!(matches!(refused, Err(IpcError::Refused { .. })), "{refused:?}");
    let reply = client.request(&IpcMessage::List).await.expect("list");
    assert_eq!(reply, IpcResponse::Success { message: "List".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_has_no_gap_and_no_duplicate_while_publishing_goes_on() {
    let bus = EventBus::new();
    let endpoint = serving(&bus).await;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, stop) = (bus.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 2_000 {
                bus.publish("tick", None, json!(n));
                n += 1;
                if n % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    for round in 0..20 {
        let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
        let mut events =
            within("follow", client.follow(Follow::history(all(), 50))).await.expect("f");
        let mut last = None;
        for _ in 0..200 {
            let event = within("event", events.next()).await.expect("open").expect("event");
            assert_ne!(event.event_type, LAGGED, "round {round}: nothing is lost at this pace");
            let seq = event.seq().expect("seq");
            if let Some(last) = last {
                assert_eq!(seq, last + 1, "round {round}: every position once, in order");
            }
            last = Some(seq);
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().expect("publisher");
}

mod old_servers {
    //! Servers of protocol 0: one that answers what it cannot read with `Error` (bunctl-ipc's
    //! servers before protocol 1), one that closes the connection (bunctl's own daemon).
    use super::*;
    use bunctl_ipc::IpcConnection;

    #[derive(Clone, Copy, PartialEq)]
    enum OnUnknown {
        AnswerError,
        Close,
    }

    /// A protocol 0 server: `Subscribe` answered `Success` and followed by two events without
    /// positions; anything it cannot read handled as `on_unknown` says.
    async fn old_server(on_unknown: OnUnknown) -> Endpoint {
        let endpoint = fresh_endpoint();
        let mut server = IpcServer::bind(endpoint.path()).await.expect("bind");
        tokio::spawn(async move {
            while let Ok(conn) = server.accept().await {
                tokio::spawn(old_connection(conn, on_unknown));
            }
        });
        endpoint
    }

    async fn old_connection(mut conn: IpcConnection, on_unknown: OnUnknown) {
        loop {
            let reply = match conn.recv().await {
                Ok(IpcMessage::Subscribe { .. }) => {
                    let ok = IpcResponse::Success { message: "Subscribed".into() };
                    if conn.send(&ok).await.is_err() {
                        return;
                    }
                    for n in 0..2 {
                        let data = json!({"app": "web", "line": format!("old-{n}")});
                        let event = IpcResponse::Event { event_type: LOG_LINE.into(), data };
                        if conn.send(&event).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Ok(other) => IpcResponse::Success { message: format!("{other:?}") },
                Err(e) if e.is_recoverable() && !e.is_timeout() => match on_unknown {
                    OnUnknown::AnswerError => IpcResponse::Error { message: e.to_string() },
                    OnUnknown::Close => return,
                },
                Err(_) => return,
            };
            if conn.send(&reply).await.is_err() {
                return;
            }
        }
    }

    async fn client_of_an_old_server_behaves(on_unknown: OnUnknown) {
        let endpoint = old_server(on_unknown).await;
        let mut client = IpcClient::connect(endpoint.path()).await.expect("connect");
        let info = within("hello", client.hello()).await.expect("hello of an old server");
        assert_eq!(info.protocol, 0);
        // Still usable (after a reconnect, for the server that closed).
        let reply = within("list", client.request(&IpcMessage::List)).await.expect("list");
        assert_eq!(reply, IpcResponse::Success { message: "List".into() });

        for follow in [
            Follow::history(logs("web"), 10),
            Follow::after(logs("web"), &Cursor { instance: "ab".into(), seq: 3 }),
        ] {
            let refused = within("follow", client.follow(follow)).await.map(|_| ());
            assert!(
                matches!(refused, Err(IpcError::Unsupported { protocol: 0, .. })),
                "{refused:?}"
            );
        }
        within("follow", client.follow(Follow::live(logs("web")))).await.expect("live follow");
        assert_eq!(line(&next(&mut client).await), "old-0");
        assert_eq!(line(&next(&mut client).await), "old-1");
        assert_eq!(client.cursor(), None, "no positions, no cursor");
    }

    #[tokio::test]
    async fn a_server_that_answers_unknown_requests_with_an_error_is_protocol_0() {
        client_of_an_old_server_behaves(OnUnknown::AnswerError).await;
    }

    #[tokio::test]
    async fn a_server_that_closes_on_unknown_requests_is_protocol_0_and_the_client_reconnects() {
        client_of_an_old_server_behaves(OnUnknown::Close).await;
    }
}

#[test]
fn a_cursor_among_the_remembered_forgotten_events_gets_an_exact_notice() {
    // Keeps 3 lines; of the 7 forgotten, remembers the positions of the last 3 (5, 6, 7).
    let bus = EventBus::with_options(BusOptions::new().with_retained_events(3));
    publish_lines(&bus, "web", 0..10);
    let notice_after = |cursor: u64| {
        let mut sub = bus.follow(logs("web"), bunctl_ipc::Replay::After(cursor));
        let notice = sub.try_recv().expect("a notice");
        (notice.missed(), notice.lost_range(), sub.try_recv().and_then(|e| e.seq()))
    };
    assert_eq!(notice_after(0), (Some(7), Some(1..=7), Some(8)), "before all: exact");
    assert_eq!(notice_after(5), (Some(2), Some(6..=7), Some(8)), "at the oldest remembered");
    assert_eq!(notice_after(6), (Some(1), Some(7..=7), Some(8)), "among the remembered");
    assert_eq!(notice_after(4), (Some(7), Some(1..=7), Some(8)), "before them: over-counted");
    let mut after_all = bus.follow(logs("web"), bunctl_ipc::Replay::After(7));
    assert_eq!(after_all.try_recv().and_then(|e| e.seq()), Some(8), "after them: no notice");
}

#[cfg(unix)]
#[tokio::test]
async fn events_of_the_replaced_subscription_never_move_the_cursor_even_when_some_are_dropped() {
    // A server that, asked to follow, first sends three events of the subscription it
    // replaces (positions 9 to 11), then its reply. With room for two, the client drops one and
    // announces it; none of the three may move the cursor the follow resumed from (the third
    // once did, which would have made a later resume skip the replay from 4 to 11).
    use bunctl_ipc::{ClientOptions, Connection, ServerInfo};
    use serde_json::Value;

    let endpoint = fresh_endpoint();
    let listener = tokio::net::UnixListener::bind(endpoint.path()).expect("bind");
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else { return };
        let mut conn: Connection<_, Value, Value> = Connection::new(stream);
        while let Ok(request) = conn.recv().await {
            let mut frames = Vec::new();
            if request.get("Hello").is_some() {
                let info = ServerInfo {
                    protocol: bunctl_ipc::PROTOCOL_VERSION,
                    instance: "ab".into(),
                    seq: 11,
                    ..ServerInfo::default()
                };
                frames.push(json!({ "Data": { "data": info } }));
            } else {
                for seq in 9..=11 {
                    let data = json!({ "app": "web", "line": format!("old-{seq}") });
                    frames.push(
                        json!({ "Event": { "event_type": LOG_LINE, "data": data, "seq": seq } }),
                    );
                }
                frames.push(json!({ "Data": { "data": { "instance": "ab", "seq": 11 } } }));
            }
            for frame in &frames {
                if conn.send(frame).await.is_err() {
                    return;
                }
            }
        }
    });

    let options = ClientOptions::new().with_max_held_events(2);
    let mut client = IpcClient::connect_with(endpoint.path(), options).await.expect("connect");
    let cursor = Cursor { instance: "ab".into(), seq: 3 };
    within("follow", client.follow(Follow::after(logs("web"), &cursor))).await.expect("follow");
    let notice = next(&mut client).await;
    assert_eq!((notice.event_type.as_str(), notice.missed()), (LAGGED, Some(1)));
    assert_eq!(line(&next(&mut client).await), "old-10");
    assert_eq!(line(&next(&mut client).await), "old-11");
    assert_eq!(client.cursor(), Some(&cursor), "the replaced subscription's events moved it");
}
