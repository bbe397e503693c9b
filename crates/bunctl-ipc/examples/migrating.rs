//! The before/after of MIGRATING.md: a daemon written against bunctl's bundled IPC crate, with
//! a hand-written loop per connection and an unbounded channel per subscriber, and the same
//! daemon on `serve` + `EventBus`. Both compile against this crate; `main` runs the "after"
//! version for one request and one event.
//!
//! ```sh
//! cargo run -p bunctl-ipc --example migrating
//! ```

use std::time::Duration;

use bunctl_ipc::{IpcClient, IpcMessage, IpcResponse, SubscriptionType};
use serde_json::json;

/// What the daemon answers; the same in both versions.
fn answer(message: IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::List => IpcResponse::Data { data: json!(["web"]) },
        IpcMessage::Restart { name } => {
            IpcResponse::Success { message: format!("restarting {name}") }
        }
        _ => IpcResponse::Error { message: "not supported".into() },
    }
}

/// Before: one task per connection, a `select!` between requests and events, and every
/// subscriber fed through an unbounded channel that grows without limit when it stops reading.
/// Whether the client left is guessed from the error's text.
#[allow(dead_code)]
mod before {
    use std::sync::{Arc, Mutex};

    use bunctl_ipc::{IpcMessage, IpcResponse, IpcServer, SubscriptionType};
    use tokio::sync::mpsc;

    use super::answer;

    type Subscribers = Arc<Mutex<Vec<(SubscriptionType, mpsc::UnboundedSender<IpcResponse>)>>>;

    pub async fn daemon(
        path: &str,
        subscribers: Subscribers,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut server = IpcServer::bind(path).await?;
        loop {
            let mut conn = server.accept().await?;
            let subscribers = Arc::clone(&subscribers);
            tokio::spawn(async move {
                let (tx, mut events) = mpsc::unbounded_channel();
                loop {
                    tokio::select! {
                        message = conn.recv() => {
                            let reply = match message {
                                Ok(IpcMessage::Subscribe { subscription }) => {
                                    subscribers.lock().expect("lock").push((subscription, tx.clone()));
                                    IpcResponse::Success { message: "Subscribed to events".into() }
                                }
                                Ok(other) => answer(other),
                                Err(e) if e.to_string().contains("eof") => break,
                                Err(_) => break,
                            };
                            if conn.send(&reply).await.is_err() {
                                break;
                            }
                        }
                        Some(event) = events.recv() => {
                            if conn.send(&event).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    }

    /// Publishing walks the list; a subscriber that stopped reading keeps every event.
    pub fn publish(
        subscribers: &Subscribers,
        event_type: &str,
        app: &str,
        data: serde_json::Value,
    ) {
        for (filter, tx) in subscribers.lock().expect("lock").iter() {
            if filter.matches(event_type, Some(app)) {
                let _ = tx
                    .send(IpcResponse::Event { event_type: event_type.into(), data: data.clone() });
            }
        }
    }
}

/// After: `serve` runs every connection (requests in order, `Subscribe`/`Unsubscribe`,
/// events between replies, timeouts, the connection cap), and the `EventBus` keeps at most a
/// bounded queue per subscriber, telling a slow one how many events it missed.
mod after {
    use bunctl_ipc::{EventBus, IpcMessage, IpcServer, serve};

    use super::answer;

    pub async fn daemon(path: &str, bus: EventBus) -> bunctl_ipc::Result<()> {
        let server = IpcServer::bind(path).await?;
        serve(server, bus, |message: IpcMessage| async move { answer(message) }).await
    }

    /// Publishing never waits and never grows memory past the queue bound.
    pub fn publish(bus: &EventBus, event_type: &str, app: &str, data: serde_json::Value) {
        bus.publish(event_type, Some(app), data);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("migrating.sock");
    let path = path.to_str().ok_or("temporary path is not UTF-8")?.to_owned();

    let bus = bunctl_ipc::EventBus::new();
    let daemon = tokio::spawn({
        let (path, bus) = (path.clone(), bus.clone());
        async move { after::daemon(&path, bus).await }
    });

    let mut client = IpcClient::connect_with_retry(&path, Duration::from_secs(5)).await?;
    println!("List -> {:?}", client.request(&IpcMessage::List).await?);
    client.subscribe(SubscriptionType::StatusEvents { app_name: Some("web".into()) }).await?;
    after::publish(&bus, "status_change", "web", json!({ "app": "web", "state": "running" }));
    println!("event -> {:?}", client.next_event().await?);

    daemon.abort();
    Ok(())
}
