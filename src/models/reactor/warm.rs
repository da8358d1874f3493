//! One event loop's cap on cold-file warm-ups, and the first-window warm a
//! worker does before handing back a cold file.
//!
//! A warm-up blocks its worker on the device for as long as the read takes
//! (milliseconds under load). The requests of every other connection need
//! a free worker meanwhile, so a loop keeps at most [`WarmSlots::max`]
//! warm-ups on the pool at once, counting both kinds: the reactor's
//! (`Action::Warm`, taken before the job is submitted, given back when
//! `Done::Warmed` is delivered) and a worker's first window of a file it
//! answers with (taken and given back inside that request's job). Without
//! the second kind under the cap, a download starting while another is
//! being warmed blocked both workers of a two-worker pool, and every cached
//! request waited for the disk.
//!
//! Runs on: the reactor thread (`try_take`/`give_back` for its warm-ups)
//! and pool workers ([`warm_first_window`]).

use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::conn::WARM_WINDOW;
use crate::http::response::{Chunk, Response};
use crate::sys;

/// The warm-ups one loop has on the pool now, at most `max`. Shared by the
/// loop and its request jobs (an `Arc`); also holds the server-wide count
/// of warm-ups (`Handle::file_warmups`).
#[derive(Debug)]
pub struct WarmSlots {
    busy: AtomicUsize,
    max: usize,
    count: Arc<AtomicU64>,
}

impl WarmSlots {
    /// At most `max` at once (at least one); `count` counts every warm-up.
    pub fn new(max: usize, count: Arc<AtomicU64>) -> WarmSlots {
        WarmSlots {
            busy: AtomicUsize::new(0),
            max: max.max(1),
            count,
        }
    }

    /// Takes a slot if one is free.
    pub fn try_take(&self) -> bool {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken with [`WarmSlots::try_take`].
    pub fn give_back(&self) {
        let before = self.busy.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "gave back a warm slot never taken");
    }

    /// Counts one warm-up (asked for, deferred or started).
    pub fn count(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Slots taken now.
    #[cfg(test)]
    fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }
}

/// What [`warm_first_window`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstWindow {
    /// No file body, or its first window is already cached.
    Ready,
    /// Read the first window in.
    Warmed,
    /// Cold, but every warm slot was taken: left for the reactor, whose
    /// write step finds it cold and queues the warm-up under the cap.
    NoSlot,
}

/// On a worker, before the answer goes to the reactor: a file body whose
/// start is not in the page cache has its first window read in here, if a
/// warm slot is free, so the reactor's first `sendfile` finds it cached
/// (else the first write asks for the same warm-up through a round trip).
pub fn warm_first_window(response: &Response, slots: &WarmSlots) -> FirstWindow {
    warm_first_window_with(response, slots, sys::page_cache::range_cached)
}

/// [`warm_first_window`] with the residency probe given (tests fake it).
fn warm_first_window_with(
    response: &Response,
    slots: &WarmSlots,
    cached: impl Fn(&File, u64, usize) -> bool,
) -> FirstWindow {
    let first_file = response.chunks.iter().find_map(|c| match c {
        Chunk::File { file, offset, len } => Some((file, *offset, *len)),
        _ => None,
    });
    let Some((file, offset, len)) = first_file else {
        return FirstWindow::Ready;
    };
    let window = len.min(WARM_WINDOW);
    if cached(file, offset, window as usize) {
        return FirstWindow::Ready;
    }
    if !slots.try_take() {
        return FirstWindow::NoSlot;
    }
    slots.count();
    if let Err(e) = sys::page_cache::warm(file, offset, window) {
        log::debug!("warming a file failed: {e}");
    }
    slots.give_back();
    FirstWindow::Warmed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::Status;

    fn file_response() -> Response {
        let path = std::env::current_exe().unwrap();
        let file = Arc::new(File::open(path).unwrap());
        response(vec![Chunk::File {
            file,
            offset: 0,
            len: 4096,
        }])
    }

    fn response(chunks: Vec<Chunk>) -> Response {
        Response {
            status: Status::OK,
            chunks,
            close: false,
            log: None,
        }
    }

    /// The bug: a worker handing back a cold file warmed its first window
    /// whatever the reactor's own warm-ups, so with one slot (two workers)
    /// both workers could sit on the disk and cached requests waited.
    #[test]
    fn handed_back_cold_file_warm_up_counts_against_the_warm_cap() {
        let count = Arc::new(AtomicU64::new(0));
        let slots = WarmSlots::new(1, Arc::clone(&count));
        assert!(
            slots.try_take(),
            "the reactor's warm-up takes the only slot"
        );
        let cold = |_: &File, _: u64, _: usize| false;
        assert_eq!(
            warm_first_window_with(&file_response(), &slots, cold),
            FirstWindow::NoSlot
        );
        assert_eq!(count.load(Ordering::Relaxed), 0, "warmed without a slot");
        assert_eq!(slots.busy(), 1);

        // The slot given back: the next cold answer warms, and gives its
        // slot back when done.
        slots.give_back();
        assert_eq!(
            warm_first_window_with(&file_response(), &slots, cold),
            FirstWindow::Warmed
        );
        assert_eq!(count.load(Ordering::Relaxed), 1);
        assert_eq!(slots.busy(), 0);
    }

    /// A cached first window, or no file at all, takes no slot.
    #[test]
    fn cached_or_memory_answers_take_no_warm_slot() {
        let slots = WarmSlots::new(1, Arc::new(AtomicU64::new(0)));
        let cached = |_: &File, _: u64, _: usize| true;
        assert_eq!(
            warm_first_window_with(&file_response(), &slots, cached),
            FirstWindow::Ready
        );
        let never = |_: &File, _: u64, _: usize| -> bool { panic!("probed a memory body") };
        assert_eq!(
            warm_first_window_with(&response(Vec::new()), &slots, never),
            FirstWindow::Ready
        );
        assert_eq!(slots.busy(), 0);
    }

    #[test]
    fn slots_cap_at_max() {
        let slots = WarmSlots::new(2, Arc::new(AtomicU64::new(0)));
        assert!(slots.try_take() && slots.try_take());
        assert!(!slots.try_take());
        slots.give_back();
        assert!(slots.try_take());
    }
}
