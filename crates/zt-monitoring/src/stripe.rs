//! Stripes: each recording thread works on its own slice of counters and its
//! own queue lane, so two threads recording at once do not contend for the
//! same cache lines.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's stripe among `stripes`. Threads get numbers round-robin on
/// their first record, so concurrent recorders land on different stripes.
pub(crate) fn current(stripes: usize) -> usize {
    let number = THREAD.with(|cell| match cell.get() {
        Some(number) => number,
        None => {
            let number = NEXT.fetch_add(1, Ordering::Relaxed);
            cell.set(Some(number));
            number
        }
    });
    number % stripes.max(1)
}

/// The default number of stripes: one per CPU, at most 4.
pub(crate) fn default_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_stripe_and_threads_spread() {
        let mine = current(1000);
        assert_eq!(current(1000), mine);
        let other = std::thread::spawn(|| current(1000)).join().unwrap();
        assert_ne!(other, mine);
        assert_eq!(current(1), 0);
    }
}
