//! The harness of the fuzz targets (issue #11), shared by every file in
//! `tests/`: it loads a target's seed corpus from `corpus/<target>/`, gives
//! proptest strategies over arbitrary bytes, arbitrary UTF-8, arbitrary JSON
//! and structure-aware mutations of the seeds, and runs a property over them
//! with a fixed seed (CI) or a random one (`FUZZ_CASES` set: a long run).
//!
//! proptest and not cargo-fuzz: the machine has one stable toolchain, and
//! libFuzzer needs nightly flags and a C++ build; proptest runs in
//! `cargo nextest` with the rest of the suite and shrinks what it finds.

mod json;
mod mutate;

pub use json::{json_text, json_value};
pub use mutate::{Mutation, apply, json_mutation, mutation};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Cases of a short run (CI), per property, when `FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u32 = 3000;

/// The seeds of one target, in file-name order.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub target: &'static str,
    pub seeds: Vec<(String, Vec<u8>)>,
}

impl Corpus {
    /// Loads `corpus/<target>/`; panics if it is missing or empty (a target
    /// without seeds is a mistake, not a pass).
    pub fn load(target: &'static str) -> Corpus {
        let dir = corpus_dir(target);
        let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                if !path.is_file() || name.starts_with('.') {
                    return None;
                }
                let bytes = std::fs::read(&path).ok()?;
                Some((name, bytes))
            })
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
        Corpus { target, seeds }
    }

    /// The seeds' bytes, shared by the strategies.
    pub fn bytes(&self) -> Arc<Vec<Vec<u8>>> {
        Arc::new(self.seeds.iter().map(|(_, b)| b.clone()).collect())
    }

    /// Words worth inserting: every key and string of the seeds that parse
    /// as JSON, and the `&`/`=`/`,`/`-` separated pieces of those that do not.
    pub fn dictionary(&self) -> Arc<Vec<String>> {
        let mut words = std::collections::BTreeSet::new();
        for (_, bytes) in &self.seeds {
            match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(value) => json::collect_words(&value, &mut words),
                Err(_) => {
                    let text = String::from_utf8_lossy(bytes);
                    for piece in text.split(['&', '=', ',', '-', '\n']) {
                        if !piece.is_empty() && piece.len() <= 64 {
                            words.insert(piece.to_owned());
                        }
                    }
                }
            }
        }
        Arc::new(words.into_iter().collect())
    }

    /// Runs `test` on every seed, reporting every one that fails.
    pub fn replay(&self, test: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
        let failures: Vec<String> = self
            .seeds
            .iter()
            .filter_map(|(name, bytes)| {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(bytes)));
                match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("{name}: {e}")),
                    Err(_) => Some(format!("{name}: panicked")),
                }
            })
            .collect();
        assert!(
            failures.is_empty(),
            "corpus {} fails:\n{}",
            self.target,
            failures.join("\n")
        );
        eprintln!(
            "fuzz {}: {} corpus seeds replayed",
            self.target,
            self.seeds.len()
        );
    }
}

/// `corpus/<target>/` of this crate.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Arbitrary bytes, most of them short.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..2048),
    ]
}

/// Arbitrary UTF-8 text (any scalar value, NUL and U+FFFF included).
pub fn utf8() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                Just('\0'),
                Just('\u{FFFF}'),
                Just('\u{FEFF}'),
                Just('"'),
                Just('\\'),
            ],
            0..64
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// A seed of `seeds` with one to four of `mutations` applied.
pub fn mutated(
    seeds: Arc<Vec<Vec<u8>>>,
    mutations: impl Strategy<Value = Mutation>,
) -> impl Strategy<Value = Vec<u8>> {
    let seed_count = seeds.len();
    (any::<Index>(), proptest::collection::vec(mutations, 1..5)).prop_map(
        move |(pick, mutations)| {
            let mut input = seeds[pick.index(seed_count)].clone();
            for m in &mutations {
                input = apply(&input, m, &seeds);
            }
            input
        },
    )
}

/// The inputs of a byte-level target: mostly mutated seeds (half of them
/// mutated as JSON only, so they get past the parser), some arbitrary JSON
/// built from the corpus' words, some arbitrary bytes and UTF-8.
pub fn inputs(corpus: &Corpus) -> BoxedStrategy<Vec<u8>> {
    let dictionary = corpus.dictionary();
    prop_oneof![
        1 => bytes(),
        1 => utf8().prop_map(String::into_bytes),
        2 => json_text(dictionary.clone()).prop_map(String::into_bytes),
        3 => mutated(corpus.bytes(), mutation(dictionary.clone())),
        3 => mutated(corpus.bytes(), json_mutation(dictionary)),
    ]
    .boxed()
}

/// `value` with every hyphenated UUID in lower case, the form `uuid`
/// writes: a decoder that reads `9A4F…` and writes `9a4f…` lost nothing.
pub fn canonical_ids(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    };
    match value {
        Value::String(s) if is_uuid(&s) => Value::String(s.to_ascii_lowercase()),
        Value::Array(items) => Value::Array(items.into_iter().map(canonical_ids).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, canonical_ids(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Cases per property: `FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The RNG seed: `FUZZ_SEED` (hex or decimal) if set; else random when
/// `FUZZ_CASES` is set (a long run explores), else fixed per property (a CI
/// run checks the same cases every time).
fn seed(name: &str) -> (u64, &'static str) {
    if let Some(seed) = std::env::var("FUZZ_SEED").ok().and_then(|v| {
        let v = v.trim();
        v.strip_prefix("0x")
            .map_or_else(|| v.parse().ok(), |hex| u64::from_str_radix(hex, 16).ok())
    }) {
        return (seed, "FUZZ_SEED");
    }
    if std::env::var_os("FUZZ_CASES").is_some() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return (fnv(name.as_bytes()) ^ nanos, "random");
    }
    (fnv(name.as_bytes()), "fixed")
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn runner(name: &str) -> (TestRunner, String) {
    let (seed, how) = seed(name);
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 10_000,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    (
        TestRunner::new_with_rng(config, rng),
        format!("seed {seed:#x} ({how})"),
    )
}

/// Runs a byte-level property of `corpus`'s target over [`inputs`]. A
/// failing input, shrunk, is written to `crashes/<target>/` (untracked) so
/// it can be moved into the corpus as a regression seed.
pub fn fuzz(corpus: &Corpus, name: &str, test: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
    let target = corpus.target;
    run(
        name,
        inputs(corpus),
        |input: Vec<u8>| test(&input),
        |input| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crashes")
                .join(target);
            let path = dir.join(format!("crash-{:016x}", fnv(input)));
            let kept =
                match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
                    Ok(()) => format!("written to {}", path.display()),
                    Err(e) => format!("could not be written to {}: {e}", path.display()),
                };
            format!(
                "{:?} ({} bytes), {kept}",
                String::from_utf8_lossy(input),
                input.len()
            )
        },
    );
}

/// Runs a typed property over `strategy` (round trips and the like).
pub fn property<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    run(name, strategy, test, |input| format!("{input:?}"));
}

fn run<S>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    describe: impl Fn(&S::Value) -> String,
) where
    S: Strategy,
    S::Value: Debug,
{
    let (mut runner, seed) = runner(name);
    let cases = runner.config().cases;
    let started = Instant::now();
    match runner.run(&strategy, test) {
        Ok(()) => eprintln!(
            "fuzz {name}: {cases} cases in {:.2} s, {seed}",
            started.elapsed().as_secs_f64()
        ),
        Err(TestError::Fail(reason, input)) => panic!(
            "fuzz {name} failed after {:.2} s ({seed}; rerun with FUZZ_SEED): {reason}\n\
             minimal input: {}",
            started.elapsed().as_secs_f64(),
            describe(&input),
        ),
        Err(TestError::Abort(reason)) => panic!("fuzz {name} aborted ({seed}): {reason}"),
    }
}
