//! The event-loop model: one reactor thread ([`event_loop`]) with its
//! deadline heap ([`timer`]) owns every socket; a work-stealing [`pool`]
//! does the blocking file work and hands answers back through the
//! [`completion`] queue, which wakes the reactor.
//!
//! Runs on: the reactor thread and the pool's worker threads.

pub mod completion;
pub mod event_loop;
pub mod pool;
pub mod stream;
pub mod timer;
