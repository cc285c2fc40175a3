//! Commands as a client that wants them done: each is retried with the same
//! idempotency key, alternating between the two instances, until one
//! acknowledges it, a rule refuses it, or its deadline passes. Every command
//! lands in the history with its outcome.

use loadgen::http::Pool;
use loadgen::torture::{OpKind, OpRecord, Outcome};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long one attempt may take, and one command in all.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// One command to run.
pub struct Call<'a> {
    pub kind: OpKind,
    pub method: &'static str,
    pub path: String,
    pub token: &'a str,
    pub body: Option<Value>,
    pub channel_id: Uuid,
    pub user_id: Uuid,
    pub message_id: Option<Uuid>,
    /// A send keys itself by its body's `client_msg_id`; the others carry
    /// this key as `Idempotency-Key`.
    pub key: String,
}

/// The two instances and the history of everything sent to them.
pub struct Api {
    pools: Vec<Pool>,
    pub started: Instant,
    next_id: AtomicU64,
    /// The fault window commands start in now.
    pub window: AtomicUsize,
    pub history: Mutex<Vec<OpRecord>>,
}

impl Api {
    pub fn new(instances: &[String], started: Instant) -> Api {
        Api {
            pools: instances.iter().map(|a| Pool::new(a)).collect(),
            started,
            next_id: AtomicU64::new(1),
            window: AtomicUsize::new(0),
            history: Mutex::new(Vec::new()),
        }
    }

    /// A query (no retry): status and JSON body, on instance `instance`.
    pub async fn get(&self, instance: usize, path: &str, token: &str) -> Option<(u16, Value)> {
        let pool = &self.pools[instance % self.pools.len()];
        let mut client = pool.take();
        let answer = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            client.request("GET", path, Some(token), None),
        )
        .await;
        let Ok(Ok(response)) = answer else {
            return None;
        };
        pool.put(client);
        Some((response.status, response.json().unwrap_or(Value::Null)))
    }

    /// Runs `call` until acknowledged, refused or out of time, starting on
    /// instance `first`; records and returns it.
    pub async fn command(&self, call: Call<'_>, first: usize) -> OpRecord {
        let started = self.started.elapsed();
        let window = self.window.load(Ordering::Relaxed);
        let begun = Instant::now();
        let header = [("Idempotency-Key", call.key.as_str())];
        let headers: &[(&str, &str)] = if call.kind == OpKind::Send {
            &[]
        } else {
            &header
        };
        let mut attempts = 0u32;
        let outcome = loop {
            let instance = (first + attempts as usize) % self.pools.len();
            attempts += 1;
            let pool = &self.pools[instance];
            let mut client = pool.take();
            let answer = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                client.request_with(
                    call.method,
                    &call.path,
                    Some(call.token),
                    call.body.as_ref(),
                    headers,
                ),
            )
            .await;
            let last_error = match answer {
                Ok(Ok(response)) => {
                    pool.put(client);
                    let body = response.json().unwrap_or(Value::Null);
                    match response.status {
                        200..=299 => {
                            break Outcome::Acked {
                                message_id: body["message_id"]
                                    .as_str()
                                    .and_then(|m| m.parse().ok()),
                                seq: body["seq"].as_u64(),
                            };
                        }
                        // Throttled, a version conflict whose retries ran
                        // out, or a backend away: a retry may succeed.
                        408 | 409 | 429 | 500..=599 => format!("HTTP {}: {body}", response.status),
                        status => {
                            break Outcome::Rejected {
                                status,
                                code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
                            };
                        }
                    }
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => "no answer within 8 s".to_owned(),
            };
            if begun.elapsed() > COMMAND_DEADLINE {
                break Outcome::GaveUp { last_error };
            }
            let pause = Duration::from_millis((100 * u64::from(attempts)).min(1000));
            tokio::time::sleep(pause).await;
        };
        let record = OpRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind: call.kind,
            key: call.key,
            channel_id: call.channel_id,
            user_id: call.user_id,
            message_id: call.message_id,
            started,
            finished: self.started.elapsed(),
            attempts,
            outcome,
            window,
        };
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        record
    }
}
