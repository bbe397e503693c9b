//! Graceful shutdown of a serving daemon.

mod common;

use std::time::Duration;

use bunctl_ipc::{
    ClientOptions, EventBus, IpcClient, IpcError, IpcMessage, IpcResponse, IpcServer,
    SubscriptionType, serve_until,
};
use common::*;
use tokio::sync::{Notify, oneshot};

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_in_flight_requests_closes_subscribers_and_removes_the_socket() {
    let ep = fresh_endpoint();
    let server = IpcServer::bind(ep.path()).await.expect("bind");
    let bus = EventBus::new();
    let release = std::sync::Arc::new(Notify::new());
    let entered = std::sync::Arc::new(Notify::new());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handler = {
        let (release, entered) = (release.clone(), entered.clone());
        move |msg: IpcMessage| {
            let (release, entered) = (release.clone(), entered.clone());
            async move {
                if let IpcMessage::Restart { .. } = msg {
                    // A slow request: it is in progress when shutdown begins.
                    entered.notify_one();
                    release.notified().await;
                }
                echoed(&msg)
            }
        }
    };
    let daemon = tokio::spawn(serve_until(
        server,
        bus.clone(),
        handler,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(20),
    ));

    let mut subscriber = IpcClient::connect(ep.path()).await.expect("connect");
    subscriber.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("sub");
    let mut busy = IpcClient::connect(ep.path()).await.expect("connect");
    let slow = IpcMessage::Restart { name: "web".into() };
    busy.send(&slow).await.expect("send");
    within("handler entered", entered.notified()).await;

    stop_tx.send(()).expect("daemon alive");
    // New clients are turned away as soon as the listener is gone. (On Windows the pipe name
    // lives on while accepted instances are open, so a newcomer finds it busy rather than
    // missing; either way it is not served.)
    let quick = ClientOptions::new().with_timeout(Duration::from_millis(200));
    within("listener closed", async {
        loop {
            match IpcClient::connect_with(ep.path(), quick).await {
                Err(IpcError::NotRunning { .. }) => break,
                Err(IpcError::Timeout { .. }) if cfg!(windows) => break,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    if cfg!(unix) {
        assert!(!ep.path().exists(), "socket file removed");
    }
    // The subscriber gets a clean end of stream.
    assert!(matches!(
        within("subscriber closed", subscriber.next_event()).await,
        Err(IpcError::Closed)
    ));
    // The request in progress still gets its reply, then a clean close.
    release.notify_one();
    assert_eq!(within("reply", busy.recv()).await.expect("reply"), echoed(&slow));
    assert!(matches!(within("closed", busy.recv()).await, Err(IpcError::Closed)));
    within("serve_until returns", daemon).await.expect("task").expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_what_outlasts_the_grace_period() {
    let ep = fresh_endpoint();
    let server = IpcServer::bind(ep.path()).await.expect("bind");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handler = |_: IpcMessage| async {
        std::future::pending::<()>().await;
        IpcResponse::Success { message: String::new() }
    };
    let daemon = tokio::spawn(serve_until(
        server,
        EventBus::new(),
        handler,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_millis(100),
    ));
    let mut stuck = IpcClient::connect(ep.path()).await.expect("connect");
    stuck.send(&IpcMessage::List).await.expect("send");
    // Make sure the request reached the handler before shutting down.
    let mut probe = IpcClient::connect(ep.path()).await.expect("connect");
    drop(probe.send(&IpcMessage::List).await);
    stop_tx.send(()).expect("daemon alive");
    within("serve_until returns after the grace period", daemon).await.expect("task").expect("ok");
    let e = within("aborted", stuck.recv()).await.expect_err("no reply");
    assert!(e.is_disconnect(), "{e}");
}
