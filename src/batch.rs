//! Work over many inputs on a bounded number of threads, results handed back in
//! the order of the inputs (what `inspect IMAGE...` does over a CI's images).
//!
//! Each worker takes the next input not yet taken; the caller's thread receives
//! the results and passes each on as soon as it and every result before it are
//! done, so output can stream in order while later inputs are still worked on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Run `job` on every input with at most `jobs` threads (at least one), and call
/// `sink` with each result in input order, on the caller's thread.
pub fn ordered<I, T, J, S>(inputs: &[I], jobs: usize, job: J, mut sink: S)
where
    I: Sync,
    T: Send,
    J: Fn(&I) -> T + Sync,
    S: FnMut(usize, T),
{
    let threads = jobs.clamp(1, inputs.len().max(1));
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, T)>();
        for _ in 0..threads {
            let (tx, next, job) = (tx.clone(), &next, &job);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(input) = inputs.get(i) else { break };
                if tx.send((i, job(input))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, T> = BTreeMap::new();
        let mut due = 0;
        for (i, result) in rx {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&due) {
                sink(due, result);
                due += 1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_come_in_input_order_whatever_finishes_first() {
        let inputs: Vec<u64> = (0..20).collect();
        for jobs in [0, 1, 3, 64] {
            let mut seen = Vec::new();
            ordered(
                &inputs,
                jobs,
                |&n| {
                    // Early inputs finish last.
                    std::thread::sleep(Duration::from_millis(20 - n));
                    n * 10
                },
                |i, r| seen.push((i, r)),
            );
            let want: Vec<(usize, u64)> = (0..20).map(|n| (n as usize, n * 10)).collect();
            assert_eq!(seen, want, "jobs {jobs}");
        }
    }

    #[test]
    fn threads_are_bounded() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let inputs = [(); 16];
        ordered(
            &inputs,
            2,
            |_| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            },
            |_, ()| {},
        );
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }
}
