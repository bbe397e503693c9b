//! Protocol 1: what a client and a server built on bunctl-ipc say beyond the protocol 0 messages.
//!
//! Two requests, [`Hello`] (who are you, what do you support) and [`Follow`] (history, then live
//! events, resumable from a [`Cursor`]), and their replies, [`ServerInfo`] and [`FollowStart`],
//! both sent as `IpcResponse::Data`. [`Request`] is what a server reads: an [`IpcMessage`] or
//! one of these. An old server answers them with an `Error` (bunctl-ipc's servers before
//! protocol 1) or closes the connection (bunctl's own daemon, on any message it cannot parse);
//! either means "protocol 0". `WIRE.md` has the whole story.
//!
//! ```
//! use ipc_proto::{Follow, IpcMessage, Request, SubscriptionType};
//!
//! let follow = Request::Follow(Follow::history(SubscriptionType::LogEvents { app_name: None }, 10));
//! assert_eq!(
//!     serde_json::to_string(&follow).unwrap(),
//!     r#"{"Follow":{"subscription":{"LogEvents":{"app_name":null}},"history":10,"after":null,"instance":null}}"#
//! );
//!
//! // The protocol 0 messages read as themselves.
//! let list: Request = serde_json::from_str(r#""List""#).unwrap();
//! assert_eq!(list, Request::Message(IpcMessage::List));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, VariantAccess};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{IpcMessage, SubscriptionType};

/// The protocol this crate speaks: 1. A server that does not answer [`Hello`] speaks 0:
/// [`IpcMessage`] requests only.
pub const PROTOCOL_VERSION: u32 = 1;

/// The feature a server lists in [`ServerInfo::features`] when it answers [`Follow`].
pub const FEATURE_FOLLOW: &str = "follow";

/// "Who are you?": answered with a [`ServerInfo`] by servers of protocol 1 and later.
///
/// On the wire: `{"Hello":{"protocol":1,"client":"bunctl-ipc 0.1.0"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The highest protocol the client speaks.
    pub protocol: u32,
    /// The client's name and version, for the server's logs.
    #[serde(default)]
    pub client: String,
}

impl Hello {
    /// A hello of [`PROTOCOL_VERSION`] from `client` (its name and version).
    pub fn new(client: impl Into<String>) -> Self {
        Hello { protocol: PROTOCOL_VERSION, client: client.into() }
    }
}

/// The answer to [`Hello`], as `{"Data":{"data":{...}}}`: who the server is, what it
/// supports, and what a person debugging it wants at a glance.
///
/// Clients read it leniently: fields a server leaves out take their defaults, and fields this
/// version does not know are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// The protocol the server speaks (0 for a server that does not know `Hello`).
    pub protocol: u32,
    /// The server's name and version, e.g. `"bunctl-ipc-daemon 0.1.0"`.
    pub server: String,
    /// The identity of the server's event bus (32 hex digits, new at every start).
    pub instance: String,
    /// The position of the last event the bus published (0 before the first).
    pub seq: u64,
    /// What the server supports beyond the protocol 0 messages, e.g. [`FEATURE_FOLLOW`].
    pub features: Vec<String>,
    /// The server's process id.
    pub pid: Option<u32>,
    /// Milliseconds since the server's bus was created.
    pub uptime_ms: u64,
    /// Connections open now, when the server knows (those served by `serve`).
    pub connections: Option<u64>,
    /// Subscriptions live now.
    pub subscribers: u64,
    /// Events published since the bus was created.
    pub published: u64,
    /// Events dropped from subscribers' queues because they fell behind, since then.
    pub lost: u64,
}

impl ServerInfo {
    /// What an old server (one that does not answer `Hello`) is taken for: protocol 0,
    /// nothing known.
    pub fn protocol_0() -> Self {
        ServerInfo::default()
    }

    /// Whether the server lists `feature`.
    pub fn supports(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// "Subscribe, and start from here": replaces the connection's subscription like `Subscribe`,
/// and is answered with a [`FollowStart`], then events.
///
/// * `history: Some(n)`: the last `n` kept events that match, then live events.
/// * `after: Some(s)` (with the bus's `instance`, or none): every kept matching event after
///   position `s`, then live ones; those no longer kept are named in a `lagged` notice first.
/// * `instance` other than the bus's (the daemon restarted): a `reset` notice, then every kept
///   matching event of the new bus.
/// * neither: live events only, as `Subscribe`.
///
/// `history` and `after` cannot be combined (the server answers `Error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    /// Which events.
    pub subscription: SubscriptionType,
    /// How many past events to replay first.
    #[serde(default)]
    pub history: Option<usize>,
    /// Replay every kept event after this position.
    #[serde(default)]
    pub after: Option<u64>,
    /// The bus `after` belongs to.
    #[serde(default)]
    pub instance: Option<String>,
}

impl Follow {
    /// Live events only.
    pub fn live(subscription: SubscriptionType) -> Self {
        Follow { subscription, history: None, after: None, instance: None }
    }

    /// The last `events` matching events, then live ones.
    pub fn history(subscription: SubscriptionType, events: usize) -> Self {
        Follow { history: Some(events), ..Follow::live(subscription) }
    }

    /// Every event after `cursor`, then live ones.
    pub fn after(subscription: SubscriptionType, cursor: &Cursor) -> Self {
        Follow {
            after: Some(cursor.seq),
            instance: Some(cursor.instance.clone()),
            ..Follow::live(subscription)
        }
    }

    /// Whether this asks for anything before live events (which an old server cannot give).
    pub fn replays(&self) -> bool {
        self.history.is_some() || self.after.is_some() || self.instance.is_some()
    }
}

/// The answer to [`Follow`], as `{"Data":{"data":{"instance":"...","seq":N}}}`: the bus's
/// identity and the boundary between replay and live. Replayed events have `seq` at or below
/// `seq`, live ones above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowStart {
    /// The bus's identity.
    pub instance: String,
    /// The position of the last event published when the subscription started.
    pub seq: u64,
}

/// A place in a server's event stream: a bus `instance` and a position on it. What a follower
/// stores to resume later ([`Follow::after`]).
///
/// Written as `instance:seq`, the form `bunctl-ipc watch --cursor-file` keeps:
///
/// ```
/// use ipc_proto::Cursor;
///
/// let cursor: Cursor = "0123456789abcdef0123456789abcdef:42".parse().unwrap();
/// assert_eq!(cursor.seq, 42);
/// assert_eq!(cursor.to_string(), "0123456789abcdef0123456789abcdef:42");
/// assert!("no colon".parse::<Cursor>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// The bus's identity.
    pub instance: String,
    /// The last position seen.
    pub seq: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.instance, self.seq)
    }
}

/// Why a text is not a [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor (expected INSTANCE:SEQ): {0:?}")]
pub struct CursorParseError(String);

impl FromStr for Cursor {
    type Err = CursorParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || CursorParseError(text.chars().take(80).collect());
        let (instance, seq) = text.rsplit_once(':').ok_or_else(bad)?;
        let ok = !instance.is_empty() && instance.bytes().all(|b| b.is_ascii_alphanumeric());
        let seq = seq.parse().map_err(|_| bad())?;
        if !ok {
            return Err(bad());
        }
        Ok(Cursor { instance: instance.to_owned(), seq })
    }
}

/// What a server built on bunctl-ipc reads: an [`IpcMessage`], or a protocol 1 request. Same
/// externally tagged JSON; `Message` adds no wrapper.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// An [`IpcMessage`]: one of the protocol 0 messages.
    Message(IpcMessage),
    /// [`Hello`].
    Hello(Hello),
    /// [`Follow`].
    Follow(Follow),
}

impl From<IpcMessage> for Request {
    fn from(message: IpcMessage) -> Self {
        Request::Message(message)
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Request::Message(message) => message.serialize(s),
            Request::Hello(hello) => s.serialize_newtype_variant("Request", 0, "Hello", hello),
            Request::Follow(follow) => s.serialize_newtype_variant("Request", 1, "Follow", follow),
        }
    }
}

// Read by hand rather than with `#[serde(untagged)]`, which would buffer every request before
// trying its variants: the tag is read once, and the brief's messages are handed to
// `IpcMessage`'s own deserializer with the tag put back in front of their value.
impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> de::Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bunctl request")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Request, E> {
        let unit: de::value::StrDeserializer<'_, E> = name.into_deserializer();
        IpcMessage::deserialize(unit).map(Request::Message)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let Some(tag) = map.next_key_seed(TagSeed)? else {
            return Err(de::Error::invalid_length(0, &"an object with one key"));
        };
        let request = match tag {
            Tag::Hello => Request::Hello(map.next_value()?),
            Tag::Follow => Request::Follow(map.next_value()?),
            Tag::Other(name) => {
                Request::Message(IpcMessage::deserialize(Tagged { name, map: &mut map })?)
            }
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(2, &"an object with one key"));
        }
        Ok(request)
    }
}

enum Tag<'de> {
    Hello,
    Follow,
    Other(MaybeBorrowed<'de>),
}

enum MaybeBorrowed<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl MaybeBorrowed<'_> {
    fn as_str(&self) -> &str {
        match self {
            MaybeBorrowed::Borrowed(s) => s,
            MaybeBorrowed::Owned(s) => s,
        }
    }
}

struct TagSeed;

impl<'de> DeserializeSeed<'de> for TagSeed {
    type Value = Tag<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tag<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for TagSeed {
    type Value = Tag<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Tag<'de>, E> {
        Ok(tag(name).unwrap_or(Tag::Other(MaybeBorrowed::Borrowed(name))))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Tag<'de>, E> {
        Ok(tag(name).unwrap_or_else(|| Tag::Other(MaybeBorrowed::Owned(name.to_owned()))))
    }
}

fn tag<'de>(name: &str) -> Option<Tag<'de>> {
    match name {
        "Hello" => Some(Tag::Hello),
        "Follow" => Some(Tag::Follow),
        _ => None,
    }
}

/// An externally tagged enum whose tag has been read already: the rest of the map is its value.
struct Tagged<'de, 'a, A> {
    name: MaybeBorrowed<'de>,
    map: &'a mut A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Tagged<'de, '_, A> {
    type Error = A::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de, 'a, A: MapAccess<'de>> EnumAccess<'de> for Tagged<'de, 'a, A> {
    type Error = A::Error;
    type Variant = TaggedValue<'a, A>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, TaggedValue<'a, A>), A::Error> {
        let name: de::value::StrDeserializer<'_, A::Error> = self.name.as_str().into_deserializer();
        Ok((seed.deserialize(name)?, TaggedValue { map: self.map }))
    }
}

struct TaggedValue<'a, A> {
    map: &'a mut A,
}

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for TaggedValue<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        // `{"List":null}`: serde accepts a unit variant in object form.
        self.map.next_value::<()>()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(Shaped { shape: Shape::Tuple(len), visitor })
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(Shaped { shape: Shape::Struct(fields), visitor })
    }
}

enum Shape {
    Tuple(usize),
    Struct(&'static [&'static str]),
}

/// A variant's value, read as the shape its visitor expects.
struct Shaped<V> {
    shape: Shape,
    visitor: V,
}

impl<'de, V: de::Visitor<'de>> DeserializeSeed<'de> for Shaped<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        match self.shape {
            Shape::Tuple(len) => d.deserialize_tuple(len, self.visitor),
            Shape::Struct(fields) => d.deserialize_struct("", fields, self.visitor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn every_brief_message_reads_as_itself_through_request() {
        for json in [
            r#"{"Start":{"name":"web","config":"{\"command\":\"bun\"}"}}"#,
            r#"{"Stop":{"name":"web"}}"#,
            r#"{"Restart":{"name":"w\u00e9b"}}"#,
            r#"{"Delete":{"name":"web"}}"#,
            r#"{"Status":{"name":null}}"#,
            r#""List""#,
            r#"{"List":null}"#,
            r#"{"Logs":{"name":"api","lines":3}}"#,
            r#"{"Subscribe":{"subscription":{"LogEvents":{"app_name":"web"}}}}"#,
            r#""Unsubscribe""#,
        ] {
            let brief: IpcMessage = serde_json::from_str(json).expect("brief");
            assert_eq!(read(json).expect("request"), Request::Message(brief.clone()), "{json}");
            // And writes back as the brief's JSON.
            let written = serde_json::to_string(&Request::Message(brief.clone())).expect("json");
            assert_eq!(written, serde_json::to_string(&brief).expect("json"));
        }
    }

    #[test]
    fn what_the_brief_refuses_request_refuses() {
        for json in [
            r#"{"Reboot":{}}"#,
            r#"{"Stop":{}}"#,
            r#"{"Logs":{"name":null,"lines":-1}}"#,
            r#"{"Stop":{"name":"a"},"Delete":{"name":"b"}}"#,
            r#"{}"#,
            r#""Hello""#,
            r#"{"Hello":{}}"#,
            r#"{"Follow":{}}"#,
            r#"{"Follow":{"subscription":{"LogEvents":{"app_name":null}},"after":-1}}"#,
            "[]",
            "3",
            "null",
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }

    #[test]
    fn protocol_1_requests_read_with_their_optional_fields_left_out() {
        assert_eq!(
            read(r#"{"Hello":{"protocol":7}}"#).expect("hello"),
            Request::Hello(Hello { protocol: 7, client: String::new() })
        );
        let live = Follow::live(SubscriptionType::AllEvents { app_name: None });
        assert_eq!(
            read(r#"{"Follow":{"subscription":{"AllEvents":{"app_name":null}}}}"#).expect("follow"),
            Request::Follow(live)
        );
        let cursor = Cursor { instance: "ab".into(), seq: 9 };
        let resume = Follow::after(SubscriptionType::LogEvents { app_name: None }, &cursor);
        let json = serde_json::to_string(&Request::Follow(resume.clone())).expect("json");
        assert_eq!(read(&json).expect("follow"), Request::Follow(resume));
    }

    #[test]
    fn server_info_reads_leniently() {
        let info: ServerInfo =
            serde_json::from_str(r#"{"protocol":1,"features":["follow"],"future":true}"#)
                .expect("lenient");
        assert!(info.supports(FEATURE_FOLLOW));
        assert_eq!(info.instance, "");
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        for bad in ["", ":1", "ab:", "ab:-1", "a b:1", "ab:1x"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
        let cursor: Cursor = " ab:18446744073709551615\n".parse().expect("cursor");
        assert_eq!(cursor, Cursor { instance: "ab".into(), seq: u64::MAX });
    }
}
