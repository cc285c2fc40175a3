//! The command side's entry: a channel command is checked against the send
//! rate, then decided and appended with the other commands on its stream
//! (`group`); a command whose idempotency key was used before answers that
//! first result.

use crate::CommandError;
use crate::channels::ChannelRepository;
use crate::group::Writer;
use domain::{
    Channel, ChannelCommand, ChannelId, MessageId, MessagePolicy, UserId, channel_stream,
};
use event_store::{Accounts, EventLog, NewEvent, RecordedEvent};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

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

/// The command side's state: the log, the accounts beside it, the grouped
/// writer with its channel cache, and the send limit.
pub struct CommandService {
    pub(crate) store: Arc<dyn EventLog>,
    pub(crate) accounts: Arc<dyn Accounts>,
    writer: Arc<Writer>,
    limiter: Option<Arc<dyn live_state::Throttle>>,
}

impl CommandService {
    /// The command side on `store`, which holds both the log and the
    /// credentials beside it (registration writes both at once).
    pub fn new<S: EventLog + Accounts + 'static>(store: Arc<S>, policy: MessagePolicy) -> Self {
        Self {
            writer: Arc::new(Writer::new(store.clone(), policy)),
            store: store.clone(),
            accounts: store,
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

    /// The cache of channel state the commands decide on.
    pub(crate) fn channels(&self) -> &ChannelRepository {
        &self.writer.channels
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
        if matches!(intent, Intent::Command(ChannelCommand::SendMessage { .. })) {
            self.admit_send(ctx, expect_type).await?;
        }
        self.writer
            .submit(channel_stream(channel_id), intent, ctx.clone(), expect_type)
            .await
    }

    /// The channel's current state from the log (authoritative, unlike the
    /// read model, which may lag): for authorizing reads of a channel.
    pub async fn channel_state(
        &self,
        channel_id: ChannelId,
    ) -> Result<Option<Channel>, CommandError> {
        Ok(self
            .channels()
            .load(&channel_stream(channel_id))
            .await?
            .state)
    }

    /// Takes a send from the actor's rate-limit bucket; a limited retry of a
    /// send accepted before is still answered (it appends nothing). Fails open
    /// when the limiter is unreachable: the limit protects the service, it must
    /// not take sending down.
    async fn admit_send(
        &self,
        ctx: &CommandContext,
        expect_type: &str,
    ) -> Result<(), CommandError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.admit(ctx.actor.0).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(limited)) => match self.replay(ctx, expect_type).await? {
                Some(_) => Ok(()),
                None => Err(CommandError::RateLimited {
                    retry_after_ms: limited.retry_after_ms,
                }),
            },
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
        self.writer.replay(ctx, expect_type).await
    }
}

/// Whether `first`, the first event of an earlier command with the same key,
/// was appended for this very request: the same type and, where the key is
/// bound to its request, the same fingerprint.
pub(crate) fn same_request(first: &RecordedEvent, ctx: &CommandContext, expect_type: &str) -> bool {
    let stored_fingerprint = first
        .metadata
        .get("request_fingerprint")
        .and_then(|f| f.as_str());
    let same_fingerprint = match (stored_fingerprint, &ctx.request_fingerprint) {
        (Some(stored), Some(asked)) => stored == asked,
        (None, None) => true,
        // Stored before requests were fingerprinted: the type is all there is.
        (None, Some(_)) => true,
        (Some(_), None) => false,
    };
    first.event_type == expect_type && same_fingerprint
}

/// The version a command whose first event is `first` left its stream at,
/// when its events say how many they were (a group appends several commands
/// in one transaction).
pub(crate) fn version_after(first: &RecordedEvent) -> Option<u64> {
    let count = first.metadata.get("command_events")?.as_u64()?;
    Some(first.stream_version + count.max(1) - 1)
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
                // What a replay answers as the version this command left.
                metadata["command_events"] = json!(events.len());
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
