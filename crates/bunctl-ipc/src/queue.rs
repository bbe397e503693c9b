//! The bounded queue that drops the oldest event when full and reports what it dropped as one
//! `lagged` notice at the gap: each subscription's queue in the bus, and the events an
//! `IpcClient` holds while a request waits for its reply. Under it, [`Window`], the bounded
//! deque that the bus also keeps each app's retained events in.

use std::collections::VecDeque;

use crate::event::Loss;

/// What a [`Window`] holds.
pub(crate) trait Queued {
    /// The bytes it counts against a window's byte bound.
    fn weight(&self) -> usize;
    /// What dropping it loses: the event itself, at its position; for a notice, the events it
    /// announced.
    fn lost_as(&self) -> Loss;
    /// Whether it is a `reset` notice. A reset is never dropped (it is what says that positions
    /// start over): when one is the oldest, the event after it goes instead.
    fn is_reset(&self) -> bool;
    /// The `lagged` notice for `loss`.
    fn notice(loss: Loss) -> Self;
}

/// Events, oldest first, bounded in number and in bytes: pushing past either bound drops the
/// oldest, and the newest always stays, however large.
#[derive(Debug)]
pub(crate) struct Window<T> {
    events: VecDeque<T>,
    /// The sum of the events' weights.
    bytes: usize,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window { events: VecDeque::new(), bytes: 0 }
    }
}

impl<T: Queued> Window<T> {
    /// Adds `event`, handing each event it drops to `dropped`, oldest first.
    pub(crate) fn push(
        &mut self,
        event: T,
        max_events: usize,
        max_bytes: usize,
        mut dropped: impl FnMut(T),
    ) {
        let weight = event.weight();
        while self.events.len() >= max_events || self.bytes + weight > max_bytes {
            let at = usize::from(self.events.front().is_some_and(T::is_reset));
            let Some(old) = self.events.remove(at) else { break };
            self.bytes -= old.weight();
            dropped(old);
        }
        self.bytes += weight;
        self.events.push_back(event);
    }

    /// Takes the oldest event.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let event = self.events.pop_front()?;
        self.bytes -= event.weight();
        Some(event)
    }

    /// The oldest event.
    pub(crate) fn front(&self) -> Option<&T> {
        self.events.front()
    }

    /// The events, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.events.iter()
    }

    /// The events, oldest first, to change in place (what they weigh must not change).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.events.iter_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Gives back the memory of an emptied window that grew past `slots` events.
    pub(crate) fn release_if_idle(&mut self, slots: usize) {
        if self.events.is_empty() && self.events.capacity() > slots {
            self.events = VecDeque::new();
        }
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.events.capacity()
    }
}

/// A [`Window`] whose dropped events are counted until they are announced: a receiver gets one
/// `lagged` notice in their place, before the events that came after them.
#[derive(Debug)]
pub(crate) struct LaggingQueue<T> {
    window: Window<T>,
    /// What was dropped since the last notice.
    lost: Loss,
}

impl<T> Default for LaggingQueue<T> {
    fn default() -> Self {
        LaggingQueue { window: Window::default(), lost: Loss::default() }
    }
}

impl<T: Queued> LaggingQueue<T> {
    /// Queues `event`, dropping the oldest while the queue is over either bound. Returns how
    /// many were dropped.
    pub(crate) fn push(&mut self, event: T, max_events: usize, max_bytes: usize) -> u64 {
        let (mut dropped, lost) = (0, &mut self.lost);
        self.window.push(event, max_events, max_bytes, |old| {
            lost.merge(old.lost_as());
            dropped += 1;
        });
        dropped
    }

    /// The next thing to hand out, in stream order: a `reset` that is the oldest event first
    /// (what was dropped came after it), then the notice for what was dropped, then the oldest
    /// event.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.lost.is_empty() || self.window.front().is_some_and(T::is_reset) {
            self.window.pop()
        } else {
            self.take_notice()
        }
    }

    /// The notice for what was dropped, if anything was.
    pub(crate) fn take_notice(&mut self) -> Option<T> {
        (!self.lost.is_empty()).then(|| T::notice(std::mem::take(&mut self.lost)))
    }

    /// What was dropped and not yet announced.
    pub(crate) fn lost(&self) -> &Loss {
        &self.lost
    }

    /// The queued events (without the notice still owed).
    pub(crate) fn window(&self) -> &Window<T> {
        &self.window
    }

    pub(crate) fn window_mut(&mut self) -> &mut Window<T> {
        &mut self.window
    }

    /// Everything not handed out: what was dropped, then the queued events.
    pub(crate) fn unreceived(&self) -> Loss {
        let mut loss = self.lost;
        for event in self.window.iter() {
            loss.merge(event.lost_as());
        }
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test event: a position, or a notice of a loss, or a reset.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum E {
        At(u64),
        Lagged(u64, Option<(u64, u64)>),
        Reset,
    }

    impl Queued for E {
        fn weight(&self) -> usize {
            10
        }
        fn lost_as(&self) -> Loss {
            match *self {
                E::At(seq) => Loss::one(Some(seq)),
                E::Lagged(missed, range) => Loss { missed, range },
                E::Reset => Loss::one(None),
            }
        }
        fn is_reset(&self) -> bool {
            *self == E::Reset
        }
        fn notice(loss: Loss) -> Self {
            E::Lagged(loss.missed, loss.range)
        }
    }

    fn drain(q: &mut LaggingQueue<E>) -> Vec<E> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn the_oldest_are_dropped_and_announced_once_at_the_gap() {
        let mut q = LaggingQueue::default();
        let dropped: u64 = (1..=5).map(|seq| q.push(E::At(seq), 2, usize::MAX)).sum();
        assert_eq!(dropped, 3);
        assert_eq!(drain(&mut q), [E::Lagged(3, Some((1, 3))), E::At(4), E::At(5)]);
    }

    #[test]
    fn the_byte_bound_drops_too_and_the_newest_always_stays() {
        let mut q = LaggingQueue::default();
        q.push(E::At(1), usize::MAX, 25);
        q.push(E::At(2), usize::MAX, 25);
        q.push(E::At(3), usize::MAX, 25);
        assert_eq!(q.window().len(), 2);
        q.push(E::At(4), usize::MAX, 5);
        assert_eq!(drain(&mut q), [E::Lagged(3, Some((1, 3))), E::At(4)]);
    }

    #[test]
    fn a_reset_is_never_dropped_and_goes_out_before_the_notice_of_what_came_after_it() {
        let mut q = LaggingQueue::default();
        q.push(E::Reset, 2, usize::MAX);
        for seq in 1..=4 {
            q.push(E::At(seq), 2, usize::MAX);
        }
        assert_eq!(drain(&mut q), [E::Reset, E::Lagged(3, Some((1, 3))), E::At(4)]);
    }

    #[test]
    fn a_dropped_notice_stands_for_what_it_announced() {
        let mut q = LaggingQueue::default();
        q.push(E::Lagged(7, Some((1, 7))), 1, usize::MAX);
        q.push(E::At(8), 1, usize::MAX);
        assert_eq!(q.unreceived(), Loss { missed: 8, range: Some((1, 8)) });
        assert_eq!(drain(&mut q), [E::Lagged(7, Some((1, 7))), E::At(8)]);
    }
}
