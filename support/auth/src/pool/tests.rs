//! The pool's promises: one buffer per thread, reused; never more hashes at
//! once than threads; a bounded queue; a deadline; no work for callers gone.

use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc as std_mpsc;

fn pool(threads: usize, queue: usize, max_wait: Duration) -> HashPool {
    HashPool::new(HashPoolConfig {
        threads,
        queue,
        max_wait,
        // Small blocks: these tests are about the pool, not about argon2.
        params: Params::new(64, 1, 1, None).expect("params"),
    })
    .expect("pool")
}

/// Occupies the pool's only thread until the returned sender is used or dropped.
fn occupy(pool: &HashPool) -> (std_mpsc::Sender<()>, oneshot::Receiver<Result<(), Busy>>) {
    let (release, released) = std_mpsc::channel::<()>();
    let (started_tx, started) = std_mpsc::channel::<()>();
    let answer = pool
        .submit(move |_| {
            let _ = started_tx.send(());
            let _ = released.recv();
        })
        .expect("queued");
    started.recv().expect("the blocking job started");
    (release, answer)
}

#[tokio::test]
async fn each_thread_keeps_its_buffer_from_one_hash_to_the_next() {
    let pool = pool(1, 4, Duration::from_secs(30));
    let first = pool
        .run(|blocks| {
            let last = blocks.len() - 1;
            blocks[last] = {
                let mut marked = Block::new();
                marked.as_mut()[0] = 0xfeed;
                marked
            };
            (blocks.as_ptr() as usize, blocks.len())
        })
        .await
        .expect("ran");
    let second = pool
        .run(|blocks| {
            (
                blocks.as_ptr() as usize,
                blocks.len(),
                blocks[blocks.len() - 1].as_mut()[0],
            )
        })
        .await
        .expect("ran");
    assert_eq!((second.0, second.1), first, "same buffer, same size");
    assert_eq!(second.2, 0xfeed, "the second job saw what the first wrote");
}

#[tokio::test]
async fn never_more_hashes_at_once_than_threads_and_one_buffer_each() {
    let pool = Arc::new(pool(2, 64, Duration::from_secs(30)));
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut answers = Vec::new();
    for _ in 0..24 {
        let (active, peak) = (active.clone(), peak.clone());
        answers.push(
            pool.submit(move |blocks| {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                active.fetch_sub(1, Ordering::SeqCst);
                blocks.as_ptr() as usize
            })
            .expect("queued"),
        );
    }
    let mut buffers = std::collections::BTreeSet::new();
    for answer in answers {
        buffers.insert(answer.await.expect("answered").expect("ran"));
    }
    assert!(peak.load(Ordering::SeqCst) <= 2, "peak {peak:?}");
    assert!(buffers.len() <= 2, "{} distinct buffers", buffers.len());
    assert_eq!(pool.hashes_computed(), 24);
}

#[tokio::test]
async fn a_full_queue_is_busy_at_once() {
    let pool = pool(1, 2, Duration::from_secs(30));
    let (release, blocker) = occupy(&pool);
    let queued: Vec<_> = (0..2)
        .map(|_| pool.submit(|_| ()).expect("a free slot"))
        .collect();
    assert_eq!(pool.submit(|_| ()).err(), Some(Busy::QueueFull));
    drop(release);
    blocker.await.expect("answered").expect("ran");
    for answer in queued {
        answer.await.expect("answered").expect("ran");
    }
    // Drained: there is room again.
    pool.run(|_| ()).await.expect("ran");
}

#[tokio::test]
async fn a_job_that_waited_past_the_deadline_is_refused_without_hashing() {
    let pool = pool(1, 2, Duration::from_millis(20));
    let (release, blocker) = occupy(&pool);
    let late = pool.submit(|_| ()).expect("queued");
    std::thread::sleep(Duration::from_millis(100));
    drop(release);
    blocker.await.expect("answered").expect("ran");
    assert_eq!(late.await.expect("answered"), Err(Busy::TimedOut));
    assert_eq!(pool.hashes_computed(), 1, "only the blocking job ran");
}

#[tokio::test]
async fn a_caller_that_went_away_costs_no_hash() {
    let pool = pool(1, 2, Duration::from_secs(30));
    let (release, blocker) = occupy(&pool);
    drop(pool.submit(|_| ()).expect("queued"));
    drop(release);
    blocker.await.expect("answered").expect("ran");
    pool.run(|_| ()).await.expect("ran"); // after the abandoned one (one thread, in order)
    assert_eq!(pool.hashes_computed(), 2);
}

#[tokio::test]
async fn a_panicking_job_does_not_take_the_thread_down() {
    let pool = pool(1, 2, Duration::from_secs(30));
    let panicked = pool.run(|_| -> () { panic!("boom") }).await;
    assert_eq!(panicked, Err(Busy::Stopped));
    pool.run(|_| ()).await.expect("the thread still serves");
}

#[tokio::test]
async fn hash_and_verify_with_the_owasp_parameters() {
    let pool = HashPool::new(HashPoolConfig::default()).expect("pool");
    let hash = pool.hash("correct horse".into()).await.expect("hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let verify = |password: &str, stored: Option<&str>| {
        pool.verify(password.to_owned(), stored.map(String::from))
    };
    assert!(verify("correct horse", Some(&hash)).await.expect("ran"));
    assert!(!verify("wrong horse!", Some(&hash)).await.expect("ran"));
    // An unknown user costs a verification too, and never matches.
    assert!(!verify("correct horse", None).await.expect("ran"));
    assert_eq!(pool.hashes_computed(), 4);
    // Rules are checked before any hash.
    assert!(matches!(
        pool.hash("short".into()).await,
        Err(PasswordError::TooShort)
    ));
    assert!(!verify(&"x".repeat(5000), Some(&hash)).await.expect("ran"));
    assert_eq!(pool.hashes_computed(), 4);
}
