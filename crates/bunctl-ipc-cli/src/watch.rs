//! `watch` and `logs --follow`: follow events (history first, or from a cursor), print each as
//! it arrives, and keep going across daemon restarts.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bunctl_ipc::event_types::{LAGGED, RESET};
use bunctl_ipc::{Cursor, Event, Follow, IpcClient, IpcError, SubscriptionType};

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

/// What to follow and how to show it.
pub struct Following<'a> {
    /// Which events.
    pub subscription: SubscriptionType,
    /// How many past events to show first, when there is no cursor to resume from.
    pub history: Option<usize>,
    /// Where the cursor is kept (journalctl's `--cursor-file`): read at the start, written at
    /// the end.
    pub cursor_file: Option<&'a Path>,
    /// Event frames as JSON lines instead of text.
    pub json: bool,
    /// An event as text (without its newline).
    pub text: fn(&Event) -> String,
}

/// The first wait before connecting again to a daemon that went away, and the longest.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MOST: Duration = Duration::from_secs(2);

/// Follows events at `endpoint` as `how` says, printing them to `out`, until `stop` completes.
///
/// Once the first subscription is confirmed, one line saying what is watched goes to `err` —
/// a script or test can wait for it before making events happen. When the daemon goes away
/// the follower says so on `err`, connects again with backoff and resumes from its cursor; a
/// restart (`reset`) and lost events (`lagged`, with how many) are one line each on `err`. The
/// cursor of the last event shown is written to the cursor file when it ends, however it ends.
pub async fn run(
    endpoint: &Path,
    timeout: Duration,
    how: Following<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> Result<Status, CliError> {
    let mut cursor = match how.cursor_file {
        Some(file) => read_cursor(file)?,
        None => None,
    };
    let mut stop = std::pin::pin!(stop);
    let outcome = follow(endpoint, timeout, &how, &mut cursor, out, err, stop.as_mut()).await;
    if let (Some(file), Some(cursor)) = (how.cursor_file, &cursor) {
        write_cursor(file, cursor)?;
    }
    outcome
}

async fn follow(
    endpoint: &Path,
    timeout: Duration,
    how: &Following<'_>,
    cursor: &mut Option<Cursor>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> Result<Status, CliError> {
    let what = describe(&how.subscription);
    // The first connect fails fast: no daemon at all is a mistake to report, not to wait out.
    let mut client = connect(endpoint, timeout).await?;
    let mut again = false;
    loop {
        start(&mut client, how, cursor.as_ref(), err)
            .await
            .map_err(|e| CliError::talking(endpoint, e))?;
        if again {
            writeln!(err, "reconnected to {}", endpoint.display())?;
        } else {
            writeln!(err, "watching {what} at {} (Ctrl-C to stop)", endpoint.display())?;
        }
        err.flush()?;
        loop {
            let event = tokio::select! {
                // `stop` first: it starts listening for Ctrl-C when first polled, which must
                // be before the first event is shown (with events always ready, an unbiased
                // select could skip it, and a Ctrl-C would then kill the process instead of
                // ending it with its cursor written).
                biased;
                () = stop.as_mut() => return Ok(Status::Success),
                event = client.next_event() => event,
            };
            match event {
                Ok(event) => {
                    show(&event, how, out, err)?;
                    if let Some(now) = client.cursor() {
                        *cursor = Some(now.clone());
                    }
                }
                Err(e) if e.is_disconnect() => break,
                Err(e) => return Err(CliError::talking(endpoint, e)),
            }
        }
        writeln!(err, "the daemon went away; reconnecting (Ctrl-C to stop)")?;
        err.flush()?;
        match reconnect(endpoint, timeout, stop.as_mut()).await {
            Some(fresh) => client = fresh,
            None => return Ok(Status::Success),
        }
        again = true;
    }
}

/// Subscribes `client`: after `cursor` if there is one, else with the history asked for. An
/// old daemon that cannot do either is followed live, and `err` says so.
async fn start(
    client: &mut IpcClient,
    how: &Following<'_>,
    cursor: Option<&Cursor>,
    err: &mut dyn Write,
) -> Result<(), IpcError> {
    let subscription = how.subscription.clone();
    let follow = match (cursor, how.history) {
        (Some(cursor), _) => Follow::after(subscription, cursor),
        (None, Some(events)) => Follow::history(subscription, events),
        (None, None) => Follow::live(subscription),
    };
    match client.follow(follow).await {
        Ok(_) => Ok(()),
        Err(e @ IpcError::Unsupported { .. }) => {
            let _ = writeln!(err, "{e}; following live events only");
            client.follow(Follow::live(how.subscription.clone())).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Prints one event: to `out`, except notices in text form, which are one line on `err`.
fn show(
    event: &Event,
    how: &Following<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let notice = notice_text(event);
    if let Some(notice) = &notice {
        writeln!(err, "{notice}")?;
        err.flush()?;
    }
    if how.json || notice.is_none() {
        out.write_all(event_line(event, how.json, how.text).as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

/// The one line a `lagged` or `reset` notice is shown as.
pub fn notice_text(event: &Event) -> Option<String> {
    match event.event_type.as_str() {
        LAGGED => {
            let missed = event.missed().map_or("some".to_owned(), |n| n.to_string());
            let range = event
                .lost_range()
                .map(|r| format!(" (positions {}-{})", r.start(), r.end()))
                .unwrap_or_default();
            Some(format!("missed {missed} events{range}"))
        }
        RESET => {
            let instance = event.data.get("instance").and_then(|i| i.as_str()).unwrap_or("?");
            Some(format!("the daemon restarted (instance {instance}); showing what it kept since"))
        }
        _ => None,
    }
}

/// Connects again, waiting longer after each failure, until `stop` completes (`None`).
async fn reconnect(
    endpoint: &Path,
    timeout: Duration,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> Option<IpcClient> {
    let mut wait = RECONNECT_FIRST;
    loop {
        tokio::select! {
            () = stop.as_mut() => return None,
            connected = connect(endpoint, timeout) => if let Ok(client) = connected {
                return Some(client);
            },
        }
        tokio::select! {
            () = stop.as_mut() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RECONNECT_MOST);
    }
}

/// The cursor kept in `file`, if it exists and holds one.
fn read_cursor(file: &Path) -> Result<Option<Cursor>, CliError> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => text
            .parse()
            .map(Some)
            .map_err(|e| CliError::Usage(format!("--cursor-file {}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Other(format!("cannot read {}: {e}", file.display()))),
    }
}

/// Writes `cursor` to `file` whole or not at all (a new file renamed over the old).
fn write_cursor(file: &Path, cursor: &Cursor) -> Result<(), CliError> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{cursor}\n"))
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", file.display())))
}

/// One event as printed, newline included: `text` of it, or with `json` the `Event` frame as
/// on the wire.
pub fn event_line(event: &Event, json: bool, text: fn(&Event) -> String) -> String {
    let mut line = if json { render::event_json_line(event) } else { text(event) };
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::Poll;

    /// Output that notes whether anything was shown before Ctrl-C was listened for.
    struct Out {
        listening: Arc<AtomicBool>,
        early: bool,
        lines: Arc<AtomicUsize>,
    }

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.early |= !self.listening.load(Ordering::SeqCst);
            let lines = buf.iter().filter(|&&b| b == b'\n').count();
            self.lines.fetch_add(lines, Ordering::SeqCst);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn ctrl_c_is_listened_for_before_the_first_event_is_shown() {
        // Otherwise a Ctrl-C right after the first lines of a replay kills the process (the
        // signal's default action) instead of ending it cleanly with its cursor written.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = if cfg!(windows) {
            std::path::PathBuf::from(format!(r"\\.\pipe\bunctl-watch-{}", std::process::id()))
        } else {
            dir.path().join("watch.sock")
        };
        let bus = bunctl_ipc::EventBus::new();
        for n in 0..50 {
            bus.publish("log_line", Some("a"), json!({"app": "a", "line": n.to_string()}));
        }
        let server = bunctl_ipc::IpcServer::bind(&path).await.expect("bind");
        let handler = |_| async { bunctl_ipc::IpcResponse::Success { message: String::new() } };
        tokio::spawn(bunctl_ipc::serve(server, bus, handler));
        for attempt in 0..20 {
            let (listening, lines) = (Arc::new(AtomicBool::new(false)), Arc::default());
            let mut out = Out { listening: Arc::clone(&listening), early: false, lines };
            let shown = Arc::clone(&out.lines);
            // Done once a few lines were shown; notes that it was listened for.
            let stop = std::future::poll_fn(|_| {
                listening.store(true, Ordering::SeqCst);
                if shown.load(Ordering::SeqCst) >= 5 { Poll::Ready(()) } else { Poll::Pending }
            });
            let how = Following {
                subscription: SubscriptionType::LogEvents { app_name: None },
                history: Some(50),
                cursor_file: None,
                json: false,
                text: render::event_text,
            };
            let mut err = Vec::new();
            let ran = run(&path, Duration::from_secs(5), how, &mut out, &mut err, stop).await;
            assert!(matches!(ran, Ok(Status::Success)), "attempt {attempt}: {ran:?}");
            assert!(!out.early, "attempt {attempt}: an event was shown before Ctrl-C was heard");
        }
    }

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
    fn losses_and_resets_are_one_line_each_saying_how_many_or_which_daemon() {
        let lagged = Event::lagged_between(12, 1031, 1190);
        assert_eq!(notice_text(&lagged).as_deref(), Some("missed 12 events (positions 1031-1190)"));
        assert_eq!(notice_text(&Event::lagged(3)).as_deref(), Some("missed 3 events"));
        let reset = Event::new("reset", json!({"instance": "ab12"}));
        assert_eq!(
            notice_text(&reset).as_deref(),
            Some("the daemon restarted (instance ab12); showing what it kept since")
        );
        assert_eq!(notice_text(&Event::new("log_line", json!({"line": "x"}))), None);
    }

    #[test]
    fn json_event_lines_are_event_frames() {
        let event = Event::new("status_change", json!({"app": "a", "state": "running"}));
        assert_eq!(
            event_line(&event, true, render::event_text),
            "{\"Event\":{\"event_type\":\"status_change\",\"data\":{\"app\":\"a\",\"state\":\"running\"}}}\n"
        );
        assert_eq!(event_line(&event, false, render::event_text), "a  status_change    running\n");
    }
}
