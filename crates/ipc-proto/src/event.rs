//! Event type names and the subscription filter.
//!
//! A daemon publishes an event as `(event_type, app_name, data)`; a connection that sent
//! [`IpcMessage::Subscribe`](crate::IpcMessage::Subscribe) receives it as
//! [`IpcResponse::Event`](crate::IpcResponse::Event) when its [`SubscriptionType`] matches.
//! Every bunctl-ipc client and server uses this one filter, so a subscription matches the same
//! events whoever serves it.
//!
//! ```
//! use ipc_proto::event::{self, SubscriptionType};
//!
//! let logs_of_web = SubscriptionType::LogEvents { app_name: Some("web".into()) };
//! assert!(logs_of_web.matches(event::LOG_LINE, Some("web")));
//! assert!(!logs_of_web.matches(event::LOG_LINE, Some("api")));
//! assert!(!logs_of_web.matches(event::PROCESS_STARTED, Some("web")));
//!
//! let everything = SubscriptionType::AllEvents { app_name: None };
//! assert!(everything.matches("anything_at_all", None));
//! ```

pub use crate::SubscriptionType;

/// An app changed state (`{"app": ..., "state": ...}`).
pub const STATUS_CHANGE: &str = "status_change";
/// An app's process was spawned (`{"app": ..., "pid": ...}`).
pub const PROCESS_STARTED: &str = "process_started";
/// An app's process exited (`{"app": ..., "exit_code": ...}`).
pub const PROCESS_EXITED: &str = "process_exited";
/// An app's process died abnormally.
pub const PROCESS_CRASHED: &str = "process_crashed";
/// An app is about to be restarted.
pub const PROCESS_RESTARTING: &str = "process_restarting";
/// One line of an app's output (`{"app": ..., "stream": "stdout"|"stderr", "line": ...}`).
pub const LOG_LINE: &str = "log_line";
/// Sent to a subscriber that fell behind, before the events it still gets:
/// `{"missed": N}` says how many it lost. Never filtered.
pub const LAGGED: &str = "lagged";
/// Sent to a follower that resumed from a cursor of another bus (the daemon restarted), before
/// the new bus's events: `{"instance": "<the new bus>"}`. Positions start over. Never filtered.
pub const RESET: &str = "reset";

/// The event types that [`SubscriptionType::StatusEvents`] receives.
pub const STATUS_EVENTS: [&str; 5] =
    [STATUS_CHANGE, PROCESS_STARTED, PROCESS_EXITED, PROCESS_CRASHED, PROCESS_RESTARTING];

/// The event types that [`SubscriptionType::LogEvents`] receives.
pub const LOG_EVENTS: [&str; 1] = [LOG_LINE];

/// The family an event type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventCategory {
    /// One of [`STATUS_EVENTS`].
    Status,
    /// One of [`LOG_EVENTS`].
    Log,
    /// Anything else: only [`SubscriptionType::AllEvents`] receives it.
    Other,
}

impl EventCategory {
    /// The category of `event_type` (exact, case-sensitive names).
    pub fn of(event_type: &str) -> EventCategory {
        if STATUS_EVENTS.contains(&event_type) {
            EventCategory::Status
        } else if LOG_EVENTS.contains(&event_type) {
            EventCategory::Log
        } else {
            EventCategory::Other
        }
    }
}

impl SubscriptionType {
    /// The app this subscription is narrowed to, or `None` for every app.
    pub fn app_name(&self) -> Option<&str> {
        match self {
            SubscriptionType::StatusEvents { app_name }
            | SubscriptionType::LogEvents { app_name }
            | SubscriptionType::AllEvents { app_name } => app_name.as_deref(),
        }
    }

    /// Whether an event of `event_type` about `app_name` is delivered to this subscription.
    ///
    /// The type must belong to the subscription's family ([`AllEvents`](Self::AllEvents) takes
    /// every type, known or not), and when the subscription names an app, the event must be
    /// about that same app: an event about no app in particular (`app_name: None`) reaches only
    /// subscriptions for every app.
    pub fn matches(&self, event_type: &str, app_name: Option<&str>) -> bool {
        let type_ok = match self {
            SubscriptionType::StatusEvents { .. } => {
                EventCategory::of(event_type) == EventCategory::Status
            }
            SubscriptionType::LogEvents { .. } => {
                EventCategory::of(event_type) == EventCategory::Log
            }
            SubscriptionType::AllEvents { .. } => true,
        };
        type_ok
            && match self.app_name() {
                None => true,
                Some(wanted) => app_name == Some(wanted),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_KNOWN: [&str; 6] = [
        STATUS_CHANGE,
        PROCESS_STARTED,
        PROCESS_EXITED,
        PROCESS_CRASHED,
        PROCESS_RESTARTING,
        LOG_LINE,
    ];

    fn subs(app: Option<&str>) -> [SubscriptionType; 3] {
        let a = app.map(str::to_owned);
        [
            SubscriptionType::StatusEvents { app_name: a.clone() },
            SubscriptionType::LogEvents { app_name: a.clone() },
            SubscriptionType::AllEvents { app_name: a },
        ]
    }

    #[test]
    fn filter_matrix_matches_the_documented_table() {
        for filter_app in [None, Some("web")] {
            for sub in subs(filter_app) {
                for ty in ALL_KNOWN.iter().copied().chain(["custom_event"]) {
                    for event_app in [None, Some("web"), Some("api")] {
                        let family = matches!(
                            (&sub, EventCategory::of(ty)),
                            (SubscriptionType::AllEvents { .. }, _)
                                | (SubscriptionType::StatusEvents { .. }, EventCategory::Status)
                                | (SubscriptionType::LogEvents { .. }, EventCategory::Log)
                        );
                        let app = filter_app.is_none() || event_app == filter_app;
                        assert_eq!(
                            sub.matches(ty, event_app),
                            family && app,
                            "{sub:?} vs ({ty}, {event_app:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn categories_of_every_known_type() {
        for t in STATUS_EVENTS {
            assert_eq!(EventCategory::of(t), EventCategory::Status);
        }
        assert_eq!(EventCategory::of(LOG_LINE), EventCategory::Log);
        assert_eq!(EventCategory::of(LAGGED), EventCategory::Other);
        assert_eq!(EventCategory::of("Log_Line"), EventCategory::Other);
    }

    #[test]
    fn status_subscription_ignores_log_lines_of_its_app() {
        let s = SubscriptionType::StatusEvents { app_name: Some("web".into()) };
        assert!(s.matches(PROCESS_EXITED, Some("web")));
        assert!(!s.matches(LOG_LINE, Some("web")));
        assert!(!s.matches(PROCESS_EXITED, None));
    }
}
