//! Group commit per stream. Concurrent commands on one stream queue behind
//! the stream's turn; whoever gets the turn takes every queued command, and a
//! task decides them one after another against the channel's state and
//! appends all their events in one statement with one expected version. Each
//! caller gets its own answer: its events, its refusal, or the replay of a key
//! used before. A conflict (another process appended) reloads and retries the
//! whole group.
//!
//! The hot path reads nothing: the cached state is trusted, and the append's
//! expected version proves it was current. What that cannot prove, a refusal
//! or a no-op decided on cached state, is decided again on state read from the
//! log before it is answered.
//!
//! The group runs in its own task holding the turn, so a caller that goes
//! away (a closed HTTP connection) cannot abandon the others' commands.

use crate::CommandError;
use crate::channels::{ChannelRepository, Loaded, decode};
use crate::executor::{
    CommandContext, Executed, Intent, same_request, to_new_events, version_after,
};
use domain::{Channel, ChannelCommand, Event, MessageFacts, MessageId, MessagePolicy};
use event_store::{AppendError, EventLog, ExpectedVersion, NewEvent, RecordedEvent};
use rand::Rng;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Attempts before a command without `If-Match` gives up with 409.
const MAX_ATTEMPTS: u32 = 25;
/// Lock stripes: streams hashed onto a fixed set of turns (bounded memory for
/// any number of streams).
const STRIPES: usize = 4096;
/// Most commands decided and appended together.
const MAX_GROUP: usize = 256;

/// One caller's command, waiting for its group.
struct Request {
    stream: String,
    intent: Intent,
    ctx: CommandContext,
    expect_type: String,
    reply: oneshot::Sender<Result<Executed, CommandError>>,
}

/// Decides and appends channel commands, grouped per stream.
pub(crate) struct Writer {
    pub store: Arc<dyn EventLog>,
    pub channels: ChannelRepository,
    policy: MessagePolicy,
    stripes: Vec<Stripe>,
    hasher: RandomState,
}

struct Stripe {
    queue: Mutex<Vec<Request>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Writer {
    pub fn new(store: Arc<dyn EventLog>, policy: MessagePolicy) -> Self {
        Self {
            channels: ChannelRepository::new(store.clone()),
            store,
            policy,
            stripes: (0..STRIPES)
                .map(|_| Stripe {
                    queue: Mutex::new(Vec::new()),
                    turn: Arc::new(tokio::sync::Mutex::new(())),
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// Queues `request` on its stream and waits for its answer, running the
    /// group itself when it gets the stream's turn first.
    pub async fn submit(
        self: &Arc<Self>,
        stream: String,
        intent: Intent,
        ctx: CommandContext,
        expect_type: &str,
    ) -> Result<Executed, CommandError> {
        let stripe = &self.stripes[self.hasher.hash_one(&stream) as usize % STRIPES];
        let (reply, mut answer) = oneshot::channel();
        lock(&stripe.queue).push(Request {
            stream,
            intent,
            ctx,
            expect_type: expect_type.to_owned(),
            reply,
        });
        loop {
            tokio::select! {
                biased;
                answered = &mut answer => {
                    // The group task ended without answering: it panicked.
                    return answered.unwrap_or(Err(CommandError::Contention));
                }
                turn = stripe.turn.clone().lock_owned() => {
                    let queued = std::mem::take(&mut *lock(&stripe.queue));
                    if queued.is_empty() {
                        continue;
                    }
                    let service = self.clone();
                    let span = tracing::debug_span!("command_group", commands = queued.len());
                    tokio::spawn(
                        async move {
                            service.run_queued(queued).await;
                            drop(turn);
                        }
                        .instrument(span),
                    );
                }
            }
        }
    }

    /// The first result of an idempotency key used before, if it was.
    pub async fn replay(
        &self,
        ctx: &CommandContext,
        expect_type: &str,
    ) -> Result<Option<Executed>, CommandError> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(None);
        };
        let Some(first) = self.store.find_by_idempotency_key(key).await? else {
            return Ok(None);
        };
        if !same_request(&first, ctx, expect_type) {
            return Err(CommandError::KeyReused);
        }
        let version = match version_after(&first) {
            Some(version) => version,
            None => self.store.version_after_append(&first).await?,
        };
        Ok(Some(Executed::Replayed { first, version }))
    }

    /// Runs queued requests stream by stream, in their order of arrival.
    async fn run_queued(&self, queued: Vec<Request>) {
        let mut by_stream: Vec<(String, Vec<Request>)> = Vec::new();
        for request in queued {
            match by_stream.iter_mut().find(|(s, _)| *s == request.stream) {
                Some((_, group)) => group.push(request),
                None => by_stream.push((request.stream.clone(), vec![request])),
            }
        }
        for (stream, mut requests) in by_stream {
            while !requests.is_empty() {
                let rest = requests.split_off(requests.len().min(MAX_GROUP));
                self.run_group(&stream, requests).await;
                requests = rest;
            }
        }
    }

    /// Decides and appends one group on `stream`, answering every request.
    async fn run_group(&self, stream: &str, mut requests: Vec<Request>) {
        metrics::histogram!("command_group_size").record(requests.len() as f64);
        let mut verify = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let current = match self.channels.current(stream, verify).await {
                Ok(current) => current,
                Err(e) => return answer_all(requests, Err(e)),
            };
            let plan = match self.plan(stream, &current.loaded, &requests).await {
                Ok(plan) => plan,
                Err(e) => return answer_all(requests, Err(e)),
            };
            if !current.verified && plan.answers_without_appending() {
                verify = true;
                continue;
            }
            if plan.events.is_empty() {
                return self.answer(requests, plan, &[]).await;
            }
            let before = current.loaded.version;
            let expected = if before == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(before)
            };
            match self.store.append(stream, expected, &plan.events).await {
                Ok(recorded) => {
                    let version = recorded.last().map_or(before, |e| e.stream_version);
                    let state = plan.state.clone();
                    self.channels
                        .advanced(stream, before, Loaded { version, state })
                        .await;
                    metrics::counter!("commands_total", "outcome" => "appended")
                        .increment(recorded.len() as u64);
                    return self.answer(requests, plan, &recorded).await;
                }
                Err(AppendError::Conflict { .. }) => {
                    metrics::counter!("command_retries_total").increment(1);
                    self.channels.forget(stream);
                    verify = true;
                    let backoff = rand::rng().random_range(0..(2u64 << attempt.min(6)));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(AppendError::DuplicateIdempotencyKey(_)) => {
                    // A key of the group was used before: answer its replays,
                    // then run the rest again.
                    requests = self.answer_replays(requests).await;
                    if requests.is_empty() {
                        return;
                    }
                }
                Err(AppendError::DuplicateEventId) => {
                    return answer_all(requests, Err(CommandError::Contention));
                }
                Err(AppendError::Database(e)) if requests.len() > 1 && refused_data(&e) => {
                    // One command's data the database refuses must not fail the others.
                    for request in requests {
                        Box::pin(self.run_group(stream, vec![request])).await;
                    }
                    return;
                }
                Err(AppendError::Database(e)) => return answer_all(requests, Err(e.into())),
            }
        }
        metrics::counter!("commands_total", "outcome" => "contention").increment(1);
        answer_all(requests, Err(CommandError::Contention));
    }

    /// Decides each request in turn against `loaded` and the events of the
    /// ones before it.
    async fn plan(
        &self,
        stream: &str,
        loaded: &Loaded,
        requests: &[Request],
    ) -> Result<Plan, CommandError> {
        let mut state = loaded.state.clone();
        let mut version = loaded.version;
        let mut decided: Vec<Event> = Vec::new();
        let mut events: Vec<NewEvent> = Vec::new();
        let mut outcomes = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            let ctx = &request.ctx;
            if let Some(key) = &ctx.idempotency_key {
                let earlier = (0..index).find(|&i| {
                    requests[i].ctx.idempotency_key.as_ref() == Some(key)
                        && matches!(outcomes[i], Outcome::Append { .. })
                });
                if let Some(first) = earlier {
                    outcomes.push(Outcome::SameKeyAs(first));
                    continue;
                }
            }
            if let (Some(expected), Some(_)) = (ctx.expected_version, &state)
                && expected != version
            {
                outcomes.push(Outcome::Answer(Err(CommandError::StaleVersion {
                    expected,
                    actual: version,
                })));
                continue;
            }
            let command = self
                .resolve(stream, request.intent.clone(), &decided)
                .await?;
            let outcome = match Channel::decide(state.as_ref(), ctx.actor, command, &self.policy) {
                Err(refused) => Outcome::Answer(Err(refused.into())),
                Ok(new) if new.is_empty() => Outcome::Answer(Ok(Executed::Unchanged { version })),
                Ok(new) => {
                    let start = events.len();
                    events.extend(to_new_events(&new, ctx));
                    state = new.iter().fold(state, Channel::evolve);
                    version += new.len() as u64;
                    decided.extend(new);
                    Outcome::Append {
                        range: start..events.len(),
                        version,
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(Plan {
            outcomes,
            events,
            state,
        })
    }

    /// Answers every request of an appended (or empty) group.
    async fn answer(&self, requests: Vec<Request>, plan: Plan, recorded: &[RecordedEvent]) {
        let appended = |index: usize| match &plan.outcomes[index] {
            Outcome::Append { range, version } => Some((range.clone(), *version)),
            _ => None,
        };
        for (index, request) in requests.into_iter().enumerate() {
            let result = match &plan.outcomes[index] {
                Outcome::Append { range, version } => Ok(Executed::Appended {
                    version: *version,
                    events: recorded[range.clone()].to_vec(),
                }),
                Outcome::SameKeyAs(first) => match appended(*first) {
                    Some((range, version)) => {
                        let first = recorded[range.start].clone();
                        if same_request(&first, &request.ctx, &request.expect_type) {
                            Ok(Executed::Replayed { first, version })
                        } else {
                            Err(CommandError::KeyReused)
                        }
                    }
                    None => Err(CommandError::Contention),
                },
                // A keyed command that did not append may be the retry of one that did.
                Outcome::Answer(result) => {
                    match self.replay(&request.ctx, &request.expect_type).await {
                        Ok(Some(replayed)) => Ok(replayed),
                        Ok(None) => result.clone(),
                        Err(e) => Err(e),
                    }
                }
            };
            let _ = request.reply.send(result);
        }
    }

    /// Answers the requests whose key was used before with their replay;
    /// returns the others.
    async fn answer_replays(&self, requests: Vec<Request>) -> Vec<Request> {
        let mut rest = Vec::with_capacity(requests.len());
        for request in requests {
            if request.ctx.idempotency_key.is_none() {
                rest.push(request);
                continue;
            }
            match self.replay(&request.ctx, &request.expect_type).await {
                Ok(None) => rest.push(request),
                Ok(Some(replayed)) => {
                    let _ = request.reply.send(Ok(replayed));
                }
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                }
            }
        }
        rest
    }

    /// The command an intent comes to now: edits and deletes look up their
    /// message in the log and in the group's events before them.
    async fn resolve(
        &self,
        stream: &str,
        intent: Intent,
        decided: &[Event],
    ) -> Result<ChannelCommand, CommandError> {
        Ok(match intent {
            Intent::Command(command) => command,
            Intent::Edit {
                message_id,
                content,
            } => ChannelCommand::EditMessage {
                message: self.message_facts(stream, message_id, decided).await?,
                content,
            },
            Intent::Delete { message_id } => ChannelCommand::DeleteMessage {
                message: self.message_facts(stream, message_id, decided).await?,
            },
        })
    }

    async fn message_facts(
        &self,
        stream: &str,
        message_id: MessageId,
        decided: &[Event],
    ) -> Result<Option<MessageFacts>, CommandError> {
        let logged = self.store.read_message_events(stream, message_id.0).await?;
        let mut facts = None;
        for recorded in &logged {
            facts = MessageFacts::evolve(facts, &decode(recorded)?);
        }
        for event in decided.iter().filter(|e| concerns(e, message_id)) {
            facts = MessageFacts::evolve(facts, event);
        }
        Ok(facts)
    }
}

/// Whether `event` is one of message `id`'s own (sent or deleted).
fn concerns(event: &Event, id: MessageId) -> bool {
    match event {
        Event::MessageSent(e) => e.message_id == id,
        Event::MessageDeleted(e) => e.message_id == id,
        _ => false,
    }
}

fn answer_all(requests: Vec<Request>, result: Result<Executed, CommandError>) {
    for request in requests {
        let _ = request.reply.send(result.clone());
    }
}

/// A database refusal of the data itself (SQLSTATE class 22, e.g. a NUL in
/// text), which only the command that carried it should get.
fn refused_data(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code.starts_with("22"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the queue lock left a Vec: still a valid queue.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one command of a group comes to.
enum Outcome {
    /// Answered without appending (a refusal, a no-op, a stale `If-Match`).
    Answer(Result<Executed, CommandError>),
    /// Appends the group's events in `range`, leaving the stream at `version`.
    Append { range: Range<usize>, version: u64 },
    /// Carries the key of the earlier command at this index, which appends.
    SameKeyAs(usize),
}

/// A group decided against one state.
struct Plan {
    outcomes: Vec<Outcome>,
    events: Vec<NewEvent>,
    state: Option<Channel>,
}

impl Plan {
    /// Whether an answer rests on the state it was decided on being current.
    fn answers_without_appending(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Answer(_)))
    }
}
