//! Runs channel commands: load state, decide, append expecting the loaded
//! version; on a lost race reload and decide again (bounded), unless the
//! client pinned the version with `If-Match`. Commands on one stream are
//! serialised in process, so retries only happen across processes.

use crate::CommandError;
use crate::channels::{ChannelRepository, Loaded, decode};
use domain::{
    Channel, ChannelCommand, ChannelId, MessageFacts, MessageId, MessagePolicy, UserId,
    channel_stream,
};
use event_store::{Accounts, AppendError, EventLog, ExpectedVersion, NewEvent, RecordedEvent};
use rand::Rng;
use serde_json::json;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Attempts before a command without `If-Match` gives up with 409.
const MAX_ATTEMPTS: u32 = 25;
/// Lock stripes serialising commands per stream (bounded memory for any number of streams).
const STRIPES: usize = 4096;

/// What a command needs besides its payload.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: UserId,
    /// The request id: becomes the events' correlation id.
    pub correlation_id: Uuid,
    /// `If-Match`: apply only at this stream version.
    pub expected_version: Option<u64>,
    /// Scoped idempotency key (already prefixed with the actor).
    pub idempotency_key: Option<String>,
    /// What the request asked for, when the key is bound to the request
    /// (`Idempotency-Key`); a replay with another fingerprint is refused.
    pub request_fingerprint: Option<String>,
}

/// A channel command, with message lookups left to the executor so they are
/// redone on every attempt.
#[derive(Debug, Clone)]
pub enum Intent {
    Command(ChannelCommand),
    Edit {
        message_id: MessageId,
        content: String,
    },
    Delete {
        message_id: MessageId,
    },
}

/// The result of a command that was accepted.
#[derive(Debug, Clone)]
pub enum Executed {
    /// Appended these events; the stream is now at `version`.
    Appended {
        version: u64,
        events: Vec<RecordedEvent>,
    },
    /// Nothing to do (already so); the stream is at `version`.
    Unchanged { version: u64 },
    /// The idempotency key was used before: this is the first result's first
    /// event, and the version that result left the stream at.
    Replayed { first: RecordedEvent, version: u64 },
}

impl Executed {
    /// The stream version to answer in `ETag`.
    pub fn version(&self) -> u64 {
        match self {
            Executed::Appended { version, .. }
            | Executed::Unchanged { version }
            | Executed::Replayed { version, .. } => *version,
        }
    }

    /// The first event of the result, if there is one.
    pub fn first_event(&self) -> Option<&RecordedEvent> {
        match self {
            Executed::Appended { events, .. } => events.first(),
            Executed::Unchanged { .. } => None,
            Executed::Replayed { first, .. } => Some(first),
        }
    }
}

/// The command side's state: the log, the accounts beside it, the channel
/// cache and the rules.
pub struct CommandService {
    pub(crate) store: Arc<dyn EventLog>,
    pub(crate) accounts: Arc<dyn Accounts>,
    pub(crate) channels: ChannelRepository,
    pub(crate) policy: MessagePolicy,
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
    limiter: Option<Arc<dyn live_state::Throttle>>,
}

impl CommandService {
    /// The command side on `store`, which holds both the log and the
    /// credentials beside it (registration writes both at once).
    pub fn new<S: EventLog + Accounts + 'static>(store: Arc<S>, policy: MessagePolicy) -> Self {
        Self {
            channels: ChannelRepository::new(store.clone()),
            store: store.clone(),
            accounts: store,
            policy,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
            limiter: None,
        }
    }

    /// Limits message sends per user with `limiter` (shared by every instance).
    pub fn with_rate_limiter(mut self, limiter: impl live_state::Throttle + 'static) -> Self {
        self.limiter = Some(Arc::new(limiter));
        self
    }

    /// The event log commands append to.
    pub fn store(&self) -> &Arc<dyn EventLog> {
        &self.store
    }

    /// Runs `intent` on channel `channel_id`; `expect_type` is the event type the
    /// command's first event has (to tell a reused idempotency key).
    pub async fn execute(
        &self,
        channel_id: ChannelId,
        intent: Intent,
        ctx: &CommandContext,
        expect_type: &str,
    ) -> Result<Executed, CommandError> {
        if let Some(replayed) = self.replay(ctx, expect_type).await? {
            return Ok(replayed);
        }
        if matches!(intent, Intent::Command(ChannelCommand::SendMessage { .. })) {
            self.admit_send(ctx.actor).await?;
        }
        let stream = channel_stream(channel_id);
        let stripe = self.hasher.hash_one(&stream) as usize % STRIPES;
        let _serialised = self.stripes[stripe].lock().await;
        // The same request may have been in flight here while this one waited.
        if let Some(replayed) = self.replay(ctx, expect_type).await? {
            return Ok(replayed);
        }
        for attempt in 1..=MAX_ATTEMPTS {
            let loaded = self.channels.load(&stream).await?;
            if let (Some(expected), Some(_)) = (ctx.expected_version, &loaded.state)
                && expected != loaded.version
            {
                return self
                    .stale_unless_replayed(ctx, expect_type, expected, loaded.version)
                    .await;
            }
            let command = self.resolve(&stream, intent.clone()).await?;
            let events = Channel::decide(loaded.state.as_ref(), ctx.actor, command, &self.policy)?;
            if events.is_empty() {
                return Ok(Executed::Unchanged {
                    version: loaded.version,
                });
            }
            let new_events = to_new_events(&events, ctx);
            let expected = if loaded.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(loaded.version)
            };
            match self.store.append(&stream, expected, &new_events).await {
                Ok(recorded) => {
                    let state = events.iter().fold(loaded.state, Channel::evolve);
                    let version = recorded.last().map_or(loaded.version, |e| e.stream_version);
                    self.channels
                        .advanced(&stream, loaded.version, Loaded { version, state })
                        .await;
                    metrics::counter!("commands_total", "outcome" => "appended").increment(1);
                    return Ok(Executed::Appended {
                        version,
                        events: recorded,
                    });
                }
                Err(AppendError::Conflict { .. }) if ctx.expected_version.is_none() => {
                    metrics::counter!("command_retries_total").increment(1);
                    self.channels.forget(&stream);
                    let backoff = rand::rng().random_range(0..(2u64 << attempt.min(6)));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(AppendError::Conflict { .. }) => {
                    let actual = self.store.stream_version(&stream).await?;
                    let expected = ctx.expected_version.unwrap_or_default();
                    return self
                        .stale_unless_replayed(ctx, expect_type, expected, actual)
                        .await;
                }
                Err(AppendError::DuplicateIdempotencyKey(_)) => {
                    return self
                        .replay(ctx, expect_type)
                        .await?
                        .ok_or(CommandError::Contention);
                }
                Err(AppendError::DuplicateEventId) => return Err(CommandError::Contention),
                Err(AppendError::Database(e)) => return Err(CommandError::Store(e)),
            }
        }
        metrics::counter!("commands_total", "outcome" => "contention").increment(1);
        Err(CommandError::Contention)
    }

    /// The channel's current state from the log (authoritative, unlike the
    /// read model, which may lag): for authorizing reads of a channel.
    pub async fn channel_state(
        &self,
        channel_id: ChannelId,
    ) -> Result<Option<Channel>, CommandError> {
        Ok(self.channels.load(&channel_stream(channel_id)).await?.state)
    }

    /// Takes a send from the actor's rate-limit bucket. Fails open when Redis is
    /// unreachable: the limit protects the service, it must not take sending down.
    async fn admit_send(&self, actor: UserId) -> Result<(), CommandError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.admit(actor.0).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(limited)) => Err(CommandError::RateLimited {
                retry_after_ms: limited.retry_after_ms,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; admitting the send");
                Ok(())
            }
        }
    }

    /// The first result of an idempotency key used before, if it was. A key
    /// bound to its request answers only that request (same fingerprint).
    pub(crate) async fn replay(
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
        let stored_fingerprint = first
            .metadata
            .get("request_fingerprint")
            .and_then(|f| f.as_str());
        let same_request = match (stored_fingerprint, &ctx.request_fingerprint) {
            (Some(stored), Some(asked)) => stored == asked,
            (None, None) => true,
            // Stored before requests were fingerprinted: the type is all there is.
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if first.event_type != expect_type || !same_request {
            return Err(CommandError::KeyReused);
        }
        let version = self.store.version_after_append(&first).await?;
        Ok(Some(Executed::Replayed { first, version }))
    }

    /// `If-Match` named an old version: a conflict, unless this very request
    /// already succeeded (a retry that waited for its first attempt).
    async fn stale_unless_replayed(
        &self,
        ctx: &CommandContext,
        expect_type: &str,
        expected: u64,
        actual: u64,
    ) -> Result<Executed, CommandError> {
        match self.replay(ctx, expect_type).await? {
            Some(replayed) => Ok(replayed),
            None => Err(CommandError::StaleVersion { expected, actual }),
        }
    }

    async fn resolve(&self, stream: &str, intent: Intent) -> Result<ChannelCommand, CommandError> {
        Ok(match intent {
            Intent::Command(command) => command,
            Intent::Edit {
                message_id,
                content,
            } => ChannelCommand::EditMessage {
                message: self.message_facts(stream, message_id).await?,
                content,
            },
            Intent::Delete { message_id } => ChannelCommand::DeleteMessage {
                message: self.message_facts(stream, message_id).await?,
            },
        })
    }

    async fn message_facts(
        &self,
        stream: &str,
        message_id: MessageId,
    ) -> Result<Option<MessageFacts>, CommandError> {
        let events = self.store.read_message_events(stream, message_id.0).await?;
        let mut facts = None;
        for recorded in &events {
            facts = MessageFacts::evolve(facts, &decode(recorded)?);
        }
        Ok(facts)
    }
}

/// The stored form of decided events, with metadata; only the first carries the idempotency key.
pub(crate) fn to_new_events(events: &[domain::Event], ctx: &CommandContext) -> Vec<NewEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let stored = event.to_stored();
            let mut metadata = json!({
                "correlation_id": ctx.correlation_id,
                "causation_id": ctx.correlation_id,
                "actor_id": ctx.actor,
            });
            if let (0, Some(key)) = (i, &ctx.idempotency_key) {
                metadata["idempotency_key"] = json!(key);
                if let Some(fingerprint) = &ctx.request_fingerprint {
                    metadata["request_fingerprint"] = json!(fingerprint);
                }
            }
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: stored.event_type,
                schema_version: stored.schema_version,
                data: stored.data,
                metadata,
            }
        })
        .collect()
}
