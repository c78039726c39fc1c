//! Mutation fuzzing of the readers on the stable toolchain: valid seed files are mutated
//! (bit flips, interesting bytes, truncation, deletion, duplication and insertion of slices,
//! splicing two seeds) and fed to a reader inside `catch_unwind`; a panic is a finding, an
//! error is the expected answer to a broken file. Seeded, so a finding replays.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// How long a fuzz run goes on.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many mutated inputs.
    Runs(usize),
    /// Until this much time has passed.
    Time(Duration),
}

/// One panic the fuzzer found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Run number (replays with the same seed and seeds).
    pub run: usize,
    /// The panic message.
    pub message: String,
    /// The input that triggered it.
    #[serde(skip)]
    pub input: Vec<u8>,
}

/// What a fuzz run did.
#[derive(Debug, Clone, Serialize)]
pub struct FuzzReport {
    /// The reader fuzzed.
    pub target: String,
    /// Mutated inputs fed.
    pub runs: usize,
    /// Of them, read without error.
    pub accepted: usize,
    /// Wall time.
    pub seconds: f64,
    /// Panics (the first 20).
    pub findings: Vec<Finding>,
}

/// Values that often sit on a boundary of a length or count field.
const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20];

/// One mutation of `input` (or a splice with `other`).
pub fn mutate(input: &[u8], other: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + rng.random_range(0..4);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(rng.random());
            continue;
        }
        let n = b.len();
        let i = rng.random_range(0..n);
        match rng.random_range(0..8) {
            0 => b[i] ^= 1 << rng.random_range(0..8),
            1 => b[i] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => b[i] = rng.random(),
            3 => b.truncate(i),
            4 => {
                let end = (i + rng.random_range(1..=16)).min(n);
                b.drain(i..end);
            }
            5 => {
                let end = (i + rng.random_range(1..=64)).min(n);
                let piece = b[i..end].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, piece);
            }
            6 => {
                let k = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..k).map(|_| rng.random()).collect();
                b.splice(i..i, bytes);
            }
            _ if !other.is_empty() => {
                let j = rng.random_range(0..other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            _ => b[i] = b[i].wrapping_add(1),
        }
    }
    b
}

/// Feeds mutations of `seeds` to `read` (which returns whether the input was accepted)
/// until the budget is spent, catching panics.
pub fn fuzz(
    target: &str,
    seeds: &[Vec<u8>],
    budget: Budget,
    seed: u64,
    read: impl Fn(&[u8]) -> bool,
) -> FuzzReport {
    assert!(!seeds.is_empty(), "fuzzing needs at least one seed input");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let last_panic = Arc::new(Mutex::new(String::new()));
    let previous_hook = std::panic::take_hook();
    {
        let last = Arc::clone(&last_panic);
        std::panic::set_hook(Box::new(move |info| {
            *last.lock().unwrap_or_else(|e| e.into_inner()) = info.to_string();
        }));
    }
    let mut report = FuzzReport {
        target: target.to_string(),
        runs: 0,
        accepted: 0,
        seconds: 0.0,
        findings: Vec::new(),
    };
    loop {
        let done = match budget {
            Budget::Runs(n) => report.runs >= n,
            Budget::Time(t) => started.elapsed() >= t,
        };
        if done {
            break;
        }
        let a = &seeds[rng.random_range(0..seeds.len())];
        let b = &seeds[rng.random_range(0..seeds.len())];
        // Now and then the seed itself, so that a reader rejecting valid files shows.
        let input = if report.runs.is_multiple_of(97) {
            a.clone()
        } else {
            mutate(a, b, &mut rng)
        };
        match catch_unwind(AssertUnwindSafe(|| read(&input))) {
            Ok(true) => report.accepted += 1,
            Ok(false) => {}
            Err(_) => {
                if report.findings.len() < 20 {
                    let message = last_panic.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    report.findings.push(Finding {
                        run: report.runs,
                        message,
                        input,
                    });
                }
            }
        }
        report.runs += 1;
    }
    std::panic::set_hook(previous_hook);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_reader_is_found_and_a_careful_one_is_not() {
        let seeds = vec![b"hello".to_vec()];
        let careful = fuzz("careful", &seeds, Budget::Runs(500), 1, |b| b.len() < 10);
        assert_eq!(careful.runs, 500);
        assert!(careful.findings.is_empty());
        assert!(careful.accepted > 0);
        // Indexing past the end panics on every input shorter than 6 bytes.
        let sloppy = fuzz("sloppy", &seeds, Budget::Runs(500), 1, |b| b[5] == 0);
        assert!(!sloppy.findings.is_empty());
        assert!(sloppy.findings[0].message.contains("index out of bounds"));
        assert!(sloppy.findings[0].input.len() < 6);
    }

    #[test]
    fn mutations_are_seeded() {
        let (mut r1, mut r2) = (StdRng::seed_from_u64(7), StdRng::seed_from_u64(7));
        let a = b"0123456789abcdef";
        for _ in 0..50 {
            assert_eq!(mutate(a, a, &mut r1), mutate(a, a, &mut r2));
        }
    }
}
