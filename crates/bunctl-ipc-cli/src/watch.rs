//! `watch`: subscribe, then print each event as it arrives.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bunctl_ipc::{Event, IpcError, IpcResponse, SubscriptionType};

use crate::call::connect;
use crate::error::{CliError, Status};
use crate::render;

/// What a subscription receives, in words: `all events of web`.
pub fn describe(subscription: &SubscriptionType) -> String {
    let what = match subscription {
        SubscriptionType::StatusEvents { .. } => "status events",
        SubscriptionType::LogEvents { .. } => "log lines",
        SubscriptionType::AllEvents { .. } => "all events",
    };
    match subscription.app_name() {
        Some(app) => format!("{what} of {app}"),
        None => format!("{what} of every app"),
    }
}

/// One event as `watch` prints it, newline included: [`render::event_text`], or with `json`
/// the `Event` frame as on the wire.
pub fn event_line(event: &Event, json: bool) -> String {
    let mut line = if json {
        render::json_line(&IpcResponse::from(event.clone()))
    } else {
        render::event_text(event)
    };
    line.push('\n');
    line
}

/// `watch`: subscribes at `endpoint`, then prints events to `out` until `stop` completes or the
/// server closes the connection.
///
/// Once the subscription is confirmed, one line saying what is watched goes to `err` — a script
/// or test can wait for it before making events happen. A clean close by the server is reported
/// on `err` and is a success; a broken connection is [`CliError::Connection`].
pub async fn run(
    endpoint: &Path,
    timeout: Duration,
    subscription: SubscriptionType,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> Result<Status, CliError> {
    let mut client = connect(endpoint, timeout).await?;
    let what = describe(&subscription);
    client.subscribe(subscription).await.map_err(|e| CliError::talking(endpoint, e))?;
    writeln!(err, "watching {what} at {} (Ctrl-C to stop)", endpoint.display())?;
    err.flush()?;
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            () = &mut stop => return Ok(Status::Success),
            event = client.next_event() => event,
        };
        match event {
            Ok(event) => {
                out.write_all(event_line(&event, json).as_bytes())?;
                out.flush()?;
            }
            Err(IpcError::Closed) => {
                writeln!(err, "the server closed the connection")?;
                return Ok(Status::Success);
            }
            Err(e) => return Err(CliError::talking(endpoint, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscriptions_are_described_in_words() {
        assert_eq!(
            describe(&SubscriptionType::LogEvents { app_name: Some("web".into()) }),
            "log lines of web"
        );
        assert_eq!(
            describe(&SubscriptionType::AllEvents { app_name: None }),
            "all events of every app"
        );
    }

    #[test]
    fn json_event_lines_are_event_frames() {
        let event = Event::new("status_change", json!({"app": "a", "state": "running"}));
        assert_eq!(
            event_line(&event, true),
            "{\"Event\":{\"event_type\":\"status_change\",\"data\":{\"app\":\"a\",\"state\":\"running\"}}}\n"
        );
        assert_eq!(event_line(&event, false), "a  status_change    running\n");
    }
}
