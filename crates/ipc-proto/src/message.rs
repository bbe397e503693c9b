//! The messages: what the CLI asks ([`IpcMessage`]), what the daemon answers ([`IpcResponse`]),
//! and what a subscriber wants to hear about ([`SubscriptionType`]).
//!
//! The names and shapes here are a compatibility contract with existing bunctl peers: renaming a
//! variant or a field changes the JSON on the wire. The golden tests in this module pin it.

use serde::{Deserialize, Serialize};

/// A request from a client (the bunctl CLI) to the server (the daemon).
///
/// On the wire each variant is serde's externally tagged JSON, e.g. `{"Stop":{"name":"web"}}`,
/// `"List"`, `{"Logs":{"name":null,"lines":100}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IpcMessage {
    /// Start an app called `name`; `config` is the app's configuration as a JSON document.
    Start {
        /// Name of the app.
        name: String,
        /// The app's configuration, itself JSON text (the daemon defines its schema).
        config: String,
    },
    /// Stop the app called `name`.
    Stop {
        /// Name of the app.
        name: String,
    },
    /// Restart the app called `name`.
    Restart {
        /// Name of the app.
        name: String,
    },
    /// Stop and forget the app called `name`.
    Delete {
        /// Name of the app.
        name: String,
    },
    /// Status of one app (`Some(name)`) or of all apps (`None`).
    Status {
        /// Name of the app, or `None` for every app.
        name: Option<String>,
    },
    /// List the apps the daemon knows.
    List,
    /// The last `lines` lines of output of one app (`Some(name)`) or of all apps (`None`).
    Logs {
        /// Name of the app, or `None` for every app.
        name: Option<String>,
        /// How many lines, counting back from the newest.
        lines: usize,
    },
    /// Receive [`IpcResponse::Event`]s matching `subscription` on this connection from now on,
    /// replacing any earlier subscription of the same connection.
    Subscribe {
        /// Which events to receive.
        subscription: SubscriptionType,
    },
    /// Stop receiving events on this connection.
    Unsubscribe,
}

/// A reply or an event from the server to a client.
///
/// On the wire: `{"Success":{"message":"..."}}`, `{"Data":{"data":{"pid":1234}}}`,
/// `{"Event":{"event_type":"log_line","data":{...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IpcResponse {
    /// The request was carried out; `message` says what happened, for humans.
    Success {
        /// Human-readable description.
        message: String,
    },
    /// The request failed; `message` says why, for humans.
    Error {
        /// Human-readable description of the failure.
        message: String,
    },
    /// The request's answer as structured data (status tables, log lines, ...).
    Data {
        /// The answer; its schema depends on the request.
        data: serde_json::Value,
    },
    /// An event pushed to a subscribed connection (see [`crate::event`] for the type names).
    Event {
        /// What happened, e.g. `"process_started"` or `"log_line"`.
        event_type: String,
        /// Details of the event.
        data: serde_json::Value,
    },
}

impl IpcResponse {
    /// True for [`IpcResponse::Event`]: pushed by a subscription rather than answering a request.
    pub fn is_event(&self) -> bool {
        matches!(self, IpcResponse::Event { .. })
    }
}

/// Which events a connection subscribes to; each kind optionally narrowed to one app.
///
/// `app_name: None` means every app. [`SubscriptionType::matches`] is the filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionType {
    /// Process lifecycle events: see [`crate::event::STATUS_EVENTS`].
    StatusEvents {
        /// Only events of this app, or of every app when `None`.
        app_name: Option<String>,
    },
    /// Output lines of apps: [`crate::event::LOG_LINE`].
    LogEvents {
        /// Only events of this app, or of every app when `None`.
        app_name: Option<String>,
    },
    /// Every event, whatever its type.
    AllEvents {
        /// Only events of this app, or of every app when `None`.
        app_name: Option<String>,
    },
}

#[cfg(test)]
mod golden {
    //! The exact JSON of every variant, as existing bunctl peers send and expect it.
    use super::*;
    use serde_json::json;

    fn pin<T>(value: T, wire: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_string(&value).expect("serialize"), wire);
        let back: T = serde_json::from_str(wire).expect("deserialize");
        assert_eq!(back, value);
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn every_message_variant_has_the_pinned_json() {
        pin(
            IpcMessage::Start { name: s("web"), config: s(r#"{"command":"bun"}"#) },
            r#"{"Start":{"name":"web","config":"{\"command\":\"bun\"}"}}"#,
        );
        pin(IpcMessage::Stop { name: s("web") }, r#"{"Stop":{"name":"web"}}"#);
        pin(IpcMessage::Restart { name: s("web") }, r#"{"Restart":{"name":"web"}}"#);
        pin(IpcMessage::Delete { name: s("web") }, r#"{"Delete":{"name":"web"}}"#);
        pin(IpcMessage::Status { name: Some(s("web")) }, r#"{"Status":{"name":"web"}}"#);
        pin(IpcMessage::Status { name: None }, r#"{"Status":{"name":null}}"#);
        pin(IpcMessage::List, r#""List""#);
        pin(IpcMessage::Logs { name: None, lines: 100 }, r#"{"Logs":{"name":null,"lines":100}}"#);
        pin(
            IpcMessage::Logs { name: Some(s("api")), lines: 0 },
            r#"{"Logs":{"name":"api","lines":0}}"#,
        );
        pin(
            IpcMessage::Subscribe {
                subscription: SubscriptionType::LogEvents { app_name: Some(s("web")) },
            },
            r#"{"Subscribe":{"subscription":{"LogEvents":{"app_name":"web"}}}}"#,
        );
        pin(IpcMessage::Unsubscribe, r#""Unsubscribe""#);
    }

    #[test]
    fn every_response_variant_has_the_pinned_json() {
        pin(IpcResponse::Success { message: s("ok") }, r#"{"Success":{"message":"ok"}}"#);
        pin(IpcResponse::Error { message: s("no") }, r#"{"Error":{"message":"no"}}"#);
        pin(IpcResponse::Data { data: json!({"pid": 1234}) }, r#"{"Data":{"data":{"pid":1234}}}"#);
        pin(
            IpcResponse::Event { event_type: s("log_line"), data: json!({"line": "hi"}) },
            r#"{"Event":{"event_type":"log_line","data":{"line":"hi"}}}"#,
        );
    }

    #[test]
    fn every_subscription_variant_has_the_pinned_json() {
        pin(
            SubscriptionType::StatusEvents { app_name: None },
            r#"{"StatusEvents":{"app_name":null}}"#,
        );
        pin(
            SubscriptionType::LogEvents { app_name: Some(s("a")) },
            r#"{"LogEvents":{"app_name":"a"}}"#,
        );
        pin(SubscriptionType::AllEvents { app_name: None }, r#"{"AllEvents":{"app_name":null}}"#);
    }

    #[test]
    fn unit_variants_are_also_accepted_in_object_form() {
        // serde accepts `{"List":null}` for a unit variant; peers written by hand sometimes send it.
        let m: IpcMessage = serde_json::from_str(r#"{"List":null}"#).expect("object form");
        assert_eq!(m, IpcMessage::List);
    }

    #[test]
    fn unknown_variant_is_rejected() {
        assert!(serde_json::from_str::<IpcMessage>(r#"{"Reboot":{}}"#).is_err());
        assert!(serde_json::from_str::<IpcMessage>(r#"{"Stop":{}}"#).is_err());
        assert!(
            serde_json::from_str::<IpcMessage>(r#"{"Logs":{"name":null,"lines":-1}}"#).is_err()
        );
    }
}
