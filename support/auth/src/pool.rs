//! A small pool of threads dedicated to argon2, each with one block buffer
//! allocated once and reused for every hash (issue 15).
//!
//! An argon2id hash with the OWASP parameters works in 19 MiB. Allocated and
//! freed per hash on whichever blocking-pool thread was free, that memory
//! stayed resident: glibc gives each thread its own arena, and after the first
//! free of a large block it raises its mmap threshold, so the next 19 MiB
//! blocks come from the arenas and stay mapped there (BENCHMARKS.md, "Password
//! hashing memory", has the measurement). Here the memory hashing uses is
//! `threads × 19 MiB`, touched at start and never freed, so the allocator's
//! arena and trim policy do not apply to it.
//!
//! In front of the threads stands a bounded queue with a deadline: a burst
//! waits at most `max_wait` for a thread or is told it is [`Busy`] at once,
//! and a caller that went away (a closed connection) costs no hash.

use crate::password::{self, MAX_PASSWORD_BYTES, PasswordError};
use argon2::{Block, Params};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The size of a [`HashPool`].
#[derive(Debug, Clone)]
pub struct HashPoolConfig {
    /// Hashes computed at once: one thread and one buffer each.
    pub threads: usize,
    /// Hashes waiting for a thread, at most; past it the pool is [`Busy`] at once.
    pub queue: usize,
    /// A hash that found no thread within this long is answered [`Busy`].
    pub max_wait: Duration,
    /// argon2 parameters of new hashes; the buffers hold `m_cost` KiB each.
    pub params: Params,
}

impl Default for HashPoolConfig {
    /// Two threads (38 MiB), sixteen waiting, two seconds: on a 2-core machine
    /// a hash takes ~50 ms, so a full queue drains in ~0.4 s.
    fn default() -> Self {
        Self {
            threads: 2,
            queue: 16,
            max_wait: Duration::from_secs(2),
            params: Params::DEFAULT,
        }
    }
}

/// The pool could not take a hash now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("too many password checks are waiting; retry shortly")]
    QueueFull,
    #[error("no password hashing thread was free in time; retry shortly")]
    TimedOut,
    #[error("the password hashing pool has stopped")]
    Stopped,
}

/// What a worker hands to a job: its buffer, or the news that the job waited too long.
enum Turn<'a> {
    Run(&'a mut [Block]),
    Expired,
}

struct Job {
    enqueued: Instant,
    work: Box<dyn for<'a> FnOnce(Turn<'a>) + Send>,
}

/// Argon2 on a fixed set of threads with a bounded queue (see the module docs).
/// Dropping the pool stops its threads once the queue is empty.
pub struct HashPool {
    sender: mpsc::SyncSender<Job>,
    computed: Arc<AtomicU64>,
    params: Params,
    decoy: String,
    config: HashPoolConfig,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("config", &self.config)
            .field("computed", &self.hashes_computed())
            .finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `config.threads` threads (at least one), each allocating its buffer now.
    pub fn new(config: HashPoolConfig) -> Result<HashPool, PasswordError> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(config.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let computed = Arc::new(AtomicU64::new(0));
        for i in 0..config.threads.max(1) {
            let (receiver, blocks, max_wait) = (
                receiver.clone(),
                config.params.block_count(),
                config.max_wait,
            );
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&receiver, blocks, max_wait))
                .map_err(|e| PasswordError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(HashPool {
            sender,
            computed,
            decoy: password::decoy(&config.params)?,
            params: config.params.clone(),
            config,
        })
    }

    /// Hashes a new password (after [`crate::check_password`]'s rules) into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        password::check_password(&password)?;
        let params = self.params.clone();
        self.run(move |blocks| password::hash_with(&params, password.as_bytes(), blocks))
            .await?
    }

    /// Whether `password` matches `stored`. With no stored hash (an unknown
    /// user) it verifies against a decoy, so that costs the same and is false.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.decoy.clone());
        let matches = self
            .run(move |blocks| password::verify_with(password.as_bytes(), &stored, blocks))
            .await??;
        Ok(matches && known)
    }

    /// Hashes computed (or verified) since the pool started.
    pub fn hashes_computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// How long a caller told [`Busy`] should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        self.config.max_wait.max(Duration::from_secs(1))
    }

    /// The pool's size.
    pub fn config(&self) -> &HashPoolConfig {
        &self.config
    }

    /// Runs `f` on a pool thread with that thread's buffer, if a slot in the
    /// queue is free now and a thread within `max_wait`.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let answer = self.submit(f)?;
        // A job that panicked drops its reply: the pool carries on, the caller hears Stopped.
        answer.await.map_err(|_| Busy::Stopped)?
    }

    /// Queues `f` now, or says the queue is full; the answer comes on the receiver.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, Busy>>, Busy> {
        let (reply, answer) = oneshot::channel();
        let computed = self.computed.clone();
        let work = Box::new(move |turn: Turn<'_>| {
            if reply.is_closed() {
                return; // the caller went away: nothing to compute for
            }
            let outcome = match turn {
                Turn::Run(blocks) => {
                    let value = f(blocks);
                    computed.fetch_add(1, Ordering::Relaxed);
                    Ok(value)
                }
                Turn::Expired => Err(Busy::TimedOut),
            };
            let _ = reply.send(outcome);
        });
        self.sender
            .try_send(Job {
                enqueued: Instant::now(),
                work,
            })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => Busy::QueueFull,
                mpsc::TrySendError::Disconnected(_) => Busy::Stopped,
            })?;
        Ok(answer)
    }
}

/// One pool thread: allocates its buffer once, then runs jobs until the pool is dropped.
fn work(receiver: &Mutex<mpsc::Receiver<Job>>, blocks: usize, max_wait: Duration) {
    let mut buffer = vec![Block::new(); blocks];
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(job) = next else {
            return; // every sender is gone
        };
        let turn = if job.enqueued.elapsed() > max_wait {
            Turn::Expired
        } else {
            Turn::Run(&mut buffer)
        };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(move || (job.work)(turn)));
    }
}

#[cfg(test)]
mod tests;
