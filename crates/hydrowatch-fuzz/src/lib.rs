//! Fuzzing on the stable toolchain: each target (in `tests/`) feeds one parser inputs made by
//! mutating valid seeds (bytes flipped, inserted, deleted, duplicated; tokens that broke parsers
//! before: line breaks, quotes, `NaN`, huge numbers, far years, long runs) and wholly random
//! bytes, for a time given by `HYDROWATCH_FUZZ_SECONDS` (default 3: the smoke CI runs). A
//! failing input (a panic, a broken invariant, a case slower than [`SLOW_CASE`]) is shrunk by
//! proptest to a small one and reported.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain. cargo-afl works on stable but needs its own
//! build of every dependency and AFL's runtime; proptest runs inside `cargo test`.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A case slower than this is a failure (a hang in the making).
pub const SLOW_CASE: Duration = Duration::from_secs(2);

/// Tokens inserted by mutation: what broke parsers before, or could.
const TOKENS: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    "\"",
    ",",
    ";",
    ":",
    "-",
    "+",
    "T",
    "Z",
    " ",
    "\t",
    "\0",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-0",
    "9999",
    "0000",
    "2062",
    "1969",
    "2200",
    "99999999999999999999",
    "18446744073709551615",
    "9223372036854775808",
    "\u{feff}",
    "é",
    "€",
    "{",
    "}",
    "[",
    "]",
    "null",
    "true",
    "+09:00",
    "-14:00",
    "02:30",
    "24:00",
    "=",
    "#",
    "'''",
    "\\",
];

/// One edit of an input.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Token(at, t)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..40, 1usize..300).prop_map(|(at, n, k)| Edit::Repeat(at, n, k)),
    ]
}

fn apply(mut input: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = input.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Flip(i, b) if len > 0 => input[i % len] ^= b | 1,
            Edit::Flip(..) => {}
            Edit::Insert(i, bytes) => {
                let i = at(*i);
                input.splice(i..i, bytes.iter().copied());
            }
            Edit::Token(i, t) => {
                let i = at(*i);
                input.splice(i..i, TOKENS[*t].bytes());
            }
            Edit::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(len);
                input.drain(i..end);
            }
            Edit::Repeat(i, n, k) => {
                let i = at(*i);
                let end = (i + n).min(len);
                let piece: Vec<u8> = input[i..end].to_vec();
                for _ in 0..*k {
                    input.splice(i..i, piece.iter().copied());
                }
            }
        }
    }
    input
}

/// Inputs for a parser: one of `seeds` with up to 8 edits, or (one case in five) random bytes.
pub fn inputs<S: AsRef<str>>(seeds: &[S]) -> impl Strategy<Value = Vec<u8>> + use<S> {
    let seeds: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(
        seeds
            .iter()
            .map(|s| s.as_ref().as_bytes().to_vec())
            .collect(),
    );
    prop_oneof![
        4 => (0..seeds.len(), proptest::collection::vec(edit(), 0..8))
            .prop_map(move |(s, edits)| apply(seeds[s].clone(), &edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..400),
    ]
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Cases tried.
    pub cases: u64,
    /// Time spent.
    pub elapsed: Duration,
}

/// Runs `test` on inputs of `strategy` until `HYDROWATCH_FUZZ_SECONDS` (default 3) have
/// passed; panics with the shrunk input on the first failure. Prints and returns the count.
pub fn fuzz<S: Strategy>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Run
where
    S::Value: std::fmt::Debug,
{
    let seconds: u64 = std::env::var("HYDROWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    const CASES_PER_ROUND: u32 = 2000;
    let cases = std::cell::Cell::new(0u64);
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: CASES_PER_ROUND,
            failure_persistence: None,
            max_shrink_iters: 10_000,
            ..Config::default()
        });
        let result = runner.run(&strategy, |input| {
            // Past the time, the round's remaining cases pass untried (a slow target, one
            // that checks a password per case, would otherwise overrun by a whole round).
            if Instant::now() >= deadline {
                return Ok(());
            }
            let t = Instant::now();
            test(input)?;
            let took = t.elapsed();
            prop_assert!(took < SLOW_CASE, "one case took {took:?}");
            cases.set(cases.get() + 1);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{target}: {e}");
        }
    }
    let cases = cases.get();
    let run = Run {
        cases,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "fuzz {target}: {} cases in {:.0} s, no failure",
        run.cases,
        run.elapsed.as_secs_f64()
    );
    run
}
