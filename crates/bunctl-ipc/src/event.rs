//! Events pushed from the daemon to subscribed clients.

use ipc_proto::IpcResponse;
use ipc_proto::event::LAGGED;
use serde_json::Value;

/// One event: what happened (`event_type`, see [`crate::event_types`]) and its details.
///
/// On the wire it is an [`IpcResponse::Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened, e.g. `"log_line"`.
    pub event_type: String,
    /// Details; bunctl's events carry the app's name under `"app"`.
    pub data: Value,
}

impl Event {
    /// An event of `event_type` with `data`.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        Event { event_type: event_type.into(), data }
    }

    /// The notice a subscriber gets after falling behind: `missed` events were dropped.
    pub fn lagged(missed: u64) -> Self {
        Event::new(LAGGED, serde_json::json!({ "missed": missed }))
    }

    /// How many events were lost, if this is a `lagged` notice.
    pub fn missed(&self) -> Option<u64> {
        if self.event_type == LAGGED { self.data.get("missed")?.as_u64() } else { None }
    }

    /// The app the event is about (`data.app`), if it names one.
    pub fn app(&self) -> Option<&str> {
        self.data.get("app")?.as_str()
    }
}

impl From<Event> for IpcResponse {
    fn from(e: Event) -> Self {
        IpcResponse::Event { event_type: e.event_type, data: e.data }
    }
}
