//! One served connection: the state machine behind `serve_connection_until`.
//
// One task drives a few parts, each with one job and its own state. A poll first checks the
// shutdown watch, then runs rounds of steps, in this order, until a round makes no progress
// (the connection then arms its one timer and waits) or `ROUNDS_PER_POLL` rounds have run (it
// then writes what is queued and yields, so that a flood cannot hog a worker). Each step is a
// method that owns its part's state changes and says whether it made progress; the loop only
// calls them, as hyper's `poll_loop` does.
//
// | step          | part               | job                                                  | states                                  |
// |---------------|--------------------|------------------------------------------------------|-----------------------------------------|
// | poll_shutdown | shutdown watch     | the server's shutdown becomes "no more input"       | running → closing                       |
// | poll_read     | wire, reading      | the next request once the previous one is answered   | open → closed (end of stream, oversize  |
// |               |                    | and the output has room; Subscribe, Unsubscribe and  | frame, read error, shutdown)            |
// |               |                    | undecodable frames are answered here                 |                                         |
// | poll_handler  | handling           | the handler runs in the round that read its request; | idle → running → idle                   |
// |               |                    | its box is reused back to back, freed when waiting   |                                         |
// | poll_events   | event pump         | subscribed events into the output while it has room  | unsubscribed ↔ subscribed               |
// | poll_gate     | reply gate         | a reply waits for the events published before it     | empty → holding → empty                 |
// | poll_write    | wire, writing      | writes when a round finds nothing to add or 8 KiB    | empty ↔ queued                          |
// |               |                    | are queued; the one place where what is owed (reply  |                                         |
// |               |                    | deadlines) is dropped as its bytes go out            |                                         |
// | poll_timers   | deadline keeper    | one timer: first owed output, frame in progress,     | —                                       |
// |               |                    | idle limit; the clock is read once per wait or yield |                                         |
//
// A reply becomes owed (its deadline starts) when it is ready: queued by the intake, or held by
// the gate. The connection is done when its input is closed, the handling and the gate are
// empty, and everything queued is written; it then returns the read error that closed its
// input, if one did.

use std::borrow::BorrowMut;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use ipc_proto::event::RESET;
use ipc_proto::{
    FEATURE_FOLLOW, Follow, FollowStart, IpcError, IpcMessage, IpcResponse, PROTOCOL_VERSION,
    Request, Result, ServerInfo,
};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, trace};

use super::deadlines::{Deadlines, Waiting};
use super::pump::{EventPump, LONGEST_NOTICE, ReplyGate};
use super::wire::Wire;
use super::{Handler, RequestContext, SUBSCRIBED, UNSUBSCRIBED};
use crate::bus::Serving;
use crate::{Connection, EventBus, PeerCredentials, Replay};

/// Rounds of work done in one poll before yielding to the runtime, so that an endless supply of
/// events cannot monopolize a worker thread. (Reading requests also spends tokio's
/// cooperative budget, which ends a poll of a flood of requests sooner.)
const ROUNDS_PER_POLL: usize = 128;

/// A served connection, apart from the handler's future: what [`Run`] drives. It is built
/// before the connection's task starts and does not move after that, so the task holds it once
/// (an `async fn` would hold both the connection it was given and the state made from it).
pub(super) struct Served<S> {
    wire: Wire<S>,
    bus: Serving,
    pump: EventPump,
    gate: ReplyGate,
    deadlines: Deadlines,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Served<S> {
    pub(super) fn new(conn: Connection<S, IpcMessage, IpcResponse>, bus: EventBus) -> Self {
        Served {
            wire: Wire::new(conn.decoding()),
            bus: bus.serving(),
            pump: EventPump::new(),
            gate: ReplyGate::new(),
            deadlines: Deadlines::new(),
        }
    }

    pub(super) fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.wire.conn.peer_credentials()
    }

    /// Serves until the client leaves or `shutdown` completes; `served` is the state, owned or
    /// borrowed.
    pub(super) fn run<'a, St, H, F>(
        served: St,
        handler: &'a H,
        shutdown: F,
    ) -> impl Future<Output = Result<()>> + 'a
    where
        St: BorrowMut<Served<S>> + 'a,
        S: 'a,
        H: Handler + ?Sized,
        F: Future<Output = ()> + 'a,
    {
        Run {
            served,
            shutdown,
            handling: Handling { boxed: None },
            calls: Calls {
                start: move |context, message| handler.handle_request(context, message),
                name: move || handler.server_name(),
            },
            _stream: PhantomData,
        }
    }
}

pin_project! {
    /// The future of a served connection: its state and the handler's future for the request
    /// being answered.
    struct Run<'a, S, St, F, M, N, Fut> {
        served: St,
        #[pin]
        shutdown: F,
        handling: Handling<Fut>,
        calls: Calls<M, N>,
        _stream: PhantomData<fn() -> &'a S>,
    }
}

/// What a served connection asks of its handler.
struct Calls<M, N> {
    /// Starts the handler on a request.
    start: M,
    /// The server's name and version, for `Hello`.
    name: N,
}

impl<S, St, F, M, N, Fut> Future for Run<'_, S, St, F, M, N, Fut>
where
    S: AsyncRead + AsyncWrite + Unpin,
    St: BorrowMut<Served<S>>,
    F: Future<Output = ()>,
    M: Fn(RequestContext, IpcMessage) -> Fut,
    N: Fn() -> String,
    Fut: Future<Output = IpcResponse>,
{
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.project();
        let served = this.served.borrow_mut();
        let outcome = served.poll_loop(cx, this.shutdown, this.handling, this.calls);
        if let Poll::Ready(Err(e)) = &outcome {
            debug!(error = %e, "connection ends");
        }
        outcome
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Served<S> {
    /// One poll of a served connection: rounds of steps (see the table at the top).
    fn poll_loop<F, Fut>(
        &mut self,
        cx: &mut Context<'_>,
        shutdown: Pin<&mut F>,
        handling: &mut Handling<Fut>,
        calls: &Calls<impl Fn(RequestContext, IpcMessage) -> Fut, impl Fn() -> String>,
    ) -> Poll<Result<()>>
    where
        F: Future<Output = ()>,
        Fut: Future<Output = IpcResponse>,
    {
        if let Err(e) = self.poll_shutdown(cx, shutdown) {
            return Poll::Ready(Err(e));
        }
        for _ in 0..ROUNDS_PER_POLL {
            let added = match self.run_steps(cx, handling, calls) {
                Ok(added) => added,
                Err(e) => return Poll::Ready(Err(e)),
            };
            // Write once this round found nothing more to add (or a batch is full), so that
            // pipelined requests get their replies in few writes rather than one each.
            let wrote = match self.poll_write(cx, !added) {
                Ok(wrote) => wrote,
                Err(e) => return Poll::Ready(Err(self.wire.take_ending().unwrap_or(e))),
            };
            if self.is_done(handling) {
                return Poll::Ready(self.wire.take_ending().map_or(Ok(()), Err));
            }
            if !added && !wrote {
                return self.poll_timers(cx, handling);
            }
        }
        // Plenty of work is still coming in: write out what is done, let other tasks run, then
        // continue.
        self.read_clock();
        if let Err(e) = self.poll_write(cx, true) {
            return Poll::Ready(Err(self.wire.take_ending().unwrap_or(e)));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The steps of one round that add to the output or change what is owed. Returns whether
    /// any made progress.
    fn run_steps<Fut>(
        &mut self,
        cx: &mut Context<'_>,
        handling: &mut Handling<Fut>,
        calls: &Calls<impl Fn(RequestContext, IpcMessage) -> Fut, impl Fn() -> String>,
    ) -> Result<bool>
    where
        Fut: Future<Output = IpcResponse>,
    {
        let read = self.poll_read(cx, handling, calls)?;
        let answered = self.poll_handler(cx, handling)?;
        let pumped = self.poll_events(cx)?;
        let released = self.poll_gate()?;
        Ok(read || answered || pumped || released)
    }

    /// Once per poll is enough: the shutdown future wakes this task when it completes.
    fn poll_shutdown<F: Future<Output = ()>>(
        &mut self,
        cx: &mut Context<'_>,
        shutdown: Pin<&mut F>,
    ) -> Result<()> {
        if self.wire.shutting_down || shutdown.poll(cx).is_pending() {
            return Ok(());
        }
        debug!("server shutting down; finishing this connection");
        self.wire.shutting_down = true;
        self.end_input(None)
    }

    /// No more input: the subscription ends (its waiting events announced), and what is queued
    /// must be written within the timeout.
    fn end_input(&mut self, ending: Option<IpcError>) -> Result<()> {
        self.pump.end(&mut self.wire)?;
        self.wire.close_input(ending);
        self.deadlines.ledger().input_closed(self.wire.queued_len());
        Ok(())
    }

    /// Queues a reply; it is owed from now (or from when the gate took it) until written.
    fn queue_reply(&mut self, reply: &IpcResponse) -> Result<()> {
        self.wire.queue_reply(reply)?;
        self.deadlines.ledger().reply_queued(self.wire.queued_len());
        Ok(())
    }

    /// Reads the next request once the previous one is answered (and, unless it is the end
    /// of the input, once the output has room: see `Wire::poll_request`).
    fn poll_read<Fut>(
        &mut self,
        cx: &mut Context<'_>,
        handling: &mut Handling<Fut>,
        calls: &Calls<impl Fn(RequestContext, IpcMessage) -> Fut, impl Fn() -> String>,
    ) -> Result<bool>
    where
        Fut: Future<Output = IpcResponse>,
    {
        if handling.is_running() || !self.gate.is_empty() {
            return Ok(false);
        }
        let Poll::Ready(received) = self.wire.poll_request(cx) else { return Ok(false) };
        self.deadlines.received();
        match received {
            Ok(Request::Message(IpcMessage::Subscribe { subscription })) => {
                self.resubscribe(Some((Follow::live(subscription), Asked::Subscribe)))?
            }
            Ok(Request::Message(IpcMessage::Unsubscribe)) => self.resubscribe(None)?,
            Ok(Request::Follow(follow)) => self.resubscribe(Some((follow, Asked::Follow)))?,
            Ok(Request::Hello(hello)) => {
                debug!(client = hello.client, protocol = hello.protocol, "hello");
                let info = self.server_info((calls.name)());
                self.queue_reply(&IpcResponse::Data { data: json(&info) })?;
            }
            Ok(Request::Message(message)) => {
                trace!(?message, "request");
                let context = RequestContext::new(self.wire.conn.peer_credentials());
                handling.start((calls.start)(context, message));
            }
            Err(IpcError::Closed) => {
                debug!("client closed its end");
                self.end_input(None)?;
            }
            Err(e) if e.is_recoverable() => {
                debug!(error = %e, "undecodable request");
                self.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
            }
            Err(e @ IpcError::FrameTooLarge { .. }) => {
                // Say why before closing; the stream cannot be read any further.
                debug!(error = %e, "oversized request; closing after the error reply");
                self.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
                self.end_input(None)?;
            }
            Err(e) => {
                // The requests before it are answered first.
                debug!(error = %e, "request stream broken; finishing what is owed");
                self.end_input(Some(e))?;
            }
        }
        Ok(true)
    }

    /// `Subscribe` or `Follow` (`Some`) or `Unsubscribe` (`None`): the old subscription ends
    /// first, so nothing of it follows the reply, and what it still had waiting is announced
    /// before it. A `Follow`'s replay comes right after its reply (a `reset` notice first when
    /// its cursor is of another bus), then live events.
    fn resubscribe(&mut self, to: Option<(Follow, Asked)>) -> Result<()> {
        self.pump.end(&mut self.wire)?;
        let Some((follow, asked)) = to else {
            return self.queue_reply(&IpcResponse::Success { message: UNSUBSCRIBED.to_owned() });
        };
        if !self.wire.fits(*LONGEST_NOTICE) {
            debug!("subscription refused: the frame limit cannot carry a loss notice");
            let message = format!(
                "events need a frame limit of {} bytes",
                *LONGEST_NOTICE - ipc_proto::HEADER_LEN
            );
            return self.queue_reply(&IpcResponse::Error { message });
        }
        if follow.history.is_some() && follow.after.is_some() {
            let message = "Follow takes history or after, not both".to_owned();
            return self.queue_reply(&IpcResponse::Error { message });
        }
        let reset = follow.instance.as_deref().is_some_and(|i| i != self.bus.instance());
        let replay = match (reset, follow.after, follow.history) {
            (true, _, _) => Replay::After(0),
            (false, Some(after), _) => Replay::After(after),
            (false, None, Some(events)) => Replay::Last(events),
            (false, None, None) => Replay::None,
        };
        let sub = self.bus.follow(follow.subscription, replay);
        let reply = match asked {
            Asked::Subscribe => IpcResponse::Success { message: SUBSCRIBED.to_owned() },
            Asked::Follow => {
                let instance = self.bus.instance().to_owned();
                IpcResponse::Data { data: json(&FollowStart { instance, seq: sub.boundary() }) }
            }
        };
        self.pump.subscribe(sub);
        self.queue_reply(&reply)?;
        if reset {
            debug!(from = follow.instance, "follower of another bus; reset");
            let data = serde_json::json!({ "instance": self.bus.instance() });
            self.wire.queue_notice(&IpcResponse::Event { event_type: RESET.to_owned(), data })?;
        }
        Ok(())
    }

    /// The answer to `Hello`.
    fn server_info(&self, server: String) -> ServerInfo {
        let bus = &*self.bus;
        ServerInfo {
            protocol: PROTOCOL_VERSION,
            server,
            instance: bus.instance().to_owned(),
            seq: bus.last_seq(),
            features: vec![FEATURE_FOLLOW.to_owned()],
            pid: Some(std::process::id()),
            uptime_ms: u64::try_from(bus.uptime().as_millis()).unwrap_or(u64::MAX),
            connections: Some(bus.serving_count() as u64),
            subscribers: bus.subscriber_count() as u64,
            published: bus.last_seq(),
            lost: bus.lost_count(),
        }
    }

    /// Runs the handler; its reply goes to the gate when events must go first, else straight
    /// to the output.
    fn poll_handler<Fut>(
        &mut self,
        cx: &mut Context<'_>,
        handling: &mut Handling<Fut>,
    ) -> Result<bool>
    where
        Fut: Future<Output = IpcResponse>,
    {
        let Some(reply) = handling.poll_done(cx) else { return Ok(false) };
        if self.pump.is_subscribed() {
            // Owed from now, even while earlier events go out first.
            self.deadlines.ledger().hold_reply();
            self.gate.hold(reply, self.bus.last_seq());
        } else {
            self.queue_reply(&reply)?;
        }
        Ok(true)
    }

    fn poll_events(&mut self, cx: &mut Context<'_>) -> Result<bool> {
        if !self.wire.has_room() {
            return Ok(false);
        }
        let through = self.gate.seq().unwrap_or(u64::MAX);
        self.pump.poll_into(cx, &mut self.wire, through)
    }

    fn poll_gate(&mut self) -> Result<bool> {
        let Some(reply) = self.gate.release(&self.pump) else { return Ok(false) };
        self.queue_reply(&reply)?;
        Ok(true)
    }

    /// Writes what is queued when `now` or a batch is full. Returns whether any byte went out.
    fn poll_write(&mut self, cx: &mut Context<'_>, now: bool) -> Result<bool> {
        if !self.wire.is_queued() || !(now || self.wire.is_batch_full()) {
            return Ok(false);
        }
        let (written, all) = self.wire.poll_write(cx)?;
        // The one place where what is owed is written off.
        self.deadlines.ledger().written(written);
        let wrote = written > 0 || all;
        if wrote {
            self.deadlines.activity();
        }
        Ok(wrote)
    }

    fn is_done<Fut: Future>(&self, handling: &Handling<Fut>) -> bool {
        self.wire.is_input_closed()
            && !handling.is_running()
            && self.gate.is_empty()
            && !self.wire.is_queued()
    }

    /// Reads the clock if anything since the last reading needs a time.
    fn read_clock(&mut self) {
        let frame = self.wire.has_partial_frame();
        if self.deadlines.needs_clock(frame) {
            let (now, limit) = (Instant::now(), self.wire.conn.timeout());
            self.deadlines.stamp(now, limit, frame);
        }
    }

    /// About to wait: memory kept for back-to-back work is given back, and the timer is armed
    /// for the limit that applies first.
    fn poll_timers<Fut: Future>(
        &mut self,
        cx: &mut Context<'_>,
        handling: &mut Handling<Fut>,
    ) -> Poll<Result<()>> {
        handling.release();
        self.deadlines.ledger().release();
        self.wire.conn.release_write_buffer();
        self.read_clock();
        let busy = handling.is_running() || !self.gate.is_empty();
        let state = Waiting {
            frame_in_progress: self.wire.has_partial_frame(),
            idle: !busy
                && !self.wire.is_input_closed()
                && !self.pump.is_subscribed()
                && !self.wire.is_queued()
                && !self.wire.has_partial_frame(),
        };
        let (limit, idle_limit) = (self.wire.conn.timeout(), self.wire.conn.idle_timeout());
        self.deadlines.poll(cx, state, limit, idle_limit)
    }
}

/// Which request started a subscription: they are answered differently.
#[derive(Clone, Copy)]
enum Asked {
    Subscribe,
    Follow,
}

/// A protocol 1 reply's data.
fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    // Plain structs of strings and numbers: serializing them cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

/// The handler's future for the request being answered (one at a time), in a box that
/// back-to-back requests reuse: the box is given back only when the connection waits, so
/// pipelined requests allocate none and an idle connection holds none.
struct Handling<F> {
    boxed: Option<Pin<Box<Option<F>>>>,
}

impl<F: Future> Handling<F> {
    fn is_running(&self) -> bool {
        self.boxed.as_ref().is_some_and(|slot| slot.is_some())
    }

    fn start(&mut self, future: F) {
        match &mut self.boxed {
            Some(slot) => slot.as_mut().set(Some(future)),
            None => self.boxed = Some(Box::pin(Some(future))),
        }
    }

    /// The handler's reply, once it has one.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Option<F::Output> {
        let slot = self.boxed.as_mut()?;
        let Poll::Ready(reply) = slot.as_mut().as_pin_mut()?.poll(cx) else { return None };
        slot.as_mut().set(None);
        Some(reply)
    }

    /// Frees the box unless a handler is running in it.
    fn release(&mut self) {
        if !self.is_running() {
            self.boxed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ipc_proto::{FrameConfig, SubscriptionType};
    use serde_json::json;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::serve::wire::HIGH_WATER;

    async fn reply(message: IpcMessage) -> IpcResponse {
        IpcResponse::Success { message: format!("{message:?}") }
    }

    /// Serves for a moment, then lets go of the state so that the test can look at it.
    async fn serve_a_while(served: &mut Served<tokio::io::DuplexStream>) {
        let run = Served::run(served, &reply, std::future::pending());
        let _ = tokio::time::timeout(Duration::from_millis(10), run).await;
    }

    #[test]
    fn the_longest_loss_notice_is_the_size_the_docs_give() {
        // serve_connection's docs and WIRE.md say 129 bytes.
        assert_eq!(*LONGEST_NOTICE, 129 + ipc_proto::HEADER_LEN);
    }

    #[tokio::test(start_paused = true)]
    async fn the_output_a_subscriber_does_not_read_is_bounded_in_bytes_not_events() {
        let (mut client, server) = tokio::io::duplex(1024);
        let bus = EventBus::new();
        let conn = Connection::with_config(server, FrameConfig::new(), Duration::from_secs(1));
        let mut served = Served::new(conn, bus.clone());
        let subscribe =
            IpcMessage::Subscribe { subscription: SubscriptionType::AllEvents { app_name: None } };
        let json = serde_json::to_vec(&subscribe).expect("json");
        client.write_all(&(json.len() as u32).to_le_bytes()).await.expect("header");
        client.write_all(&json).await.expect("body");
        serve_a_while(&mut served).await;
        assert_eq!(bus.subscriber_count(), 1);

        // One batch worth of large events, none of them read by the client.
        let pad = "p".repeat(64 * 1024);
        for n in 0..64 {
            bus.publish("log_line", Some("web"), json!({ "n": n, "pad": pad }));
        }
        serve_a_while(&mut served).await;
        let queued = served.wire.conn.queued_len();
        assert!(queued >= HIGH_WATER, "the output should have filled up: {queued}");
        assert!(
            queued <= HIGH_WATER + pad.len() + 100,
            "{queued} bytes queued for a client that reads nothing"
        );
        drop(client);
    }
}
