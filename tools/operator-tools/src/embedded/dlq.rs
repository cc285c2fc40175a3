//! `chat dlq` on the embedded backend, over the table `rm.dead_letters`.
//!
//! Ids are event ids, as on the services path (where the AMQP message id is
//! the event id), and the table holds one letter per event. `retry` applies
//! the stored event through the live projector's own path (decoded and
//! checked against its schema as the projector does, then `apply_event` in
//! a live transaction) and removes the letter only after that commit: a
//! crash between the two leaves a letter whose next retry is a duplicate.

use super::status::DEAD_LETTER_TABLE;
use crate::dlq::DeadLetter;
use event_store::EventLog;
use projector::{EventSchemas, Outcome};
use read_model::{ReadModel, SqliteReadModel};
use serde_json::{Value, json};

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("no dead letter with id {0} in {DEAD_LETTER_TABLE}")]
    NotFound(String),
    #[error("the read model: {0}")]
    Read(#[from] sqlx::Error),
    #[error("the event schemas: {0}")]
    Schemas(String),
    #[error("dead letter {id} still cannot be applied: {reason}; it stays in the dead letters")]
    StillFails { id: String, reason: String },
}

/// What a retry did with one letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Applied to the live read model now.
    Applied,
    /// The live model had it already (a later event of its stream healed it in).
    Duplicate,
}

/// The dead letters of a data directory's read model.
pub struct Dlq<'a> {
    read: &'a SqliteReadModel,
    log: &'a dyn EventLog,
}

impl<'a> Dlq<'a> {
    pub fn new(read: &'a SqliteReadModel, log: &'a dyn EventLog) -> Self {
        Self { read, log }
    }

    /// Up to `limit` dead letters, oldest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, DlqError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .read
            .dead_letters(limit)
            .await?
            .iter()
            .map(summary)
            .collect())
    }

    /// The dead letter with this id: summary, where it is stored, and the body.
    pub async fn show(&self, id: &str) -> Result<Vec<Value>, DlqError> {
        let stored = self.find(Some(id)).await?;
        Ok(stored.iter().map(detail).collect())
    }

    /// Applies the dead letters with this id (all: `None`) and removes each
    /// once applied. Returns what was retried and what failed.
    pub async fn retry(
        &self,
        id: Option<&str>,
    ) -> Result<(Vec<(DeadLetter, Retried)>, Vec<DlqError>), DlqError> {
        let stored = self.find(id).await?;
        let schemas = EventSchemas::load().map_err(DlqError::Schemas)?;
        let (mut retried, mut failed) = (Vec::new(), Vec::new());
        for letter in stored {
            let still_fails = |reason: String| DlqError::StillFails {
                id: letter.event_id.to_string(),
                reason,
            };
            let (recorded, event) =
                match projector::decode_delivery(letter.body.as_bytes(), &schemas) {
                    Ok(decoded) => decoded,
                    Err(poison) => {
                        failed.push(still_fails(poison.0));
                        continue;
                    }
                };
            let mut tx = self.read.begin(read_model::LIVE_SCHEMA).await?;
            let outcome = match projector::apply_event(&mut *tx, self.log, &recorded, &event).await
            {
                Ok(outcome) => outcome,
                Err(e) => {
                    failed.push(still_fails(e.to_string()));
                    continue;
                }
            };
            tx.commit().await?;
            self.read.remove_dead_letter(letter.id).await?;
            let how = match outcome {
                Outcome::Applied { .. } => Retried::Applied,
                Outcome::Duplicate => Retried::Duplicate,
            };
            retried.push((summary(&letter), how));
        }
        Ok((retried, failed))
    }

    /// Removes the dead letter with this id; returns how many.
    pub async fn drop_letter(&self, id: &str) -> Result<usize, DlqError> {
        let mut dropped = 0;
        for letter in self.find(Some(id)).await? {
            if self.read.remove_dead_letter(letter.id).await? {
                dropped += 1;
            }
        }
        if dropped == 0 {
            return Err(DlqError::NotFound(id.to_owned()));
        }
        Ok(dropped)
    }

    /// The stored letters with this event id (every one: `None`); an id
    /// that names none is an error.
    async fn find(&self, id: Option<&str>) -> Result<Vec<read_model::DeadLetter>, DlqError> {
        let all = self.read.dead_letters(i64::MAX).await?;
        let Some(id) = id else { return Ok(all) };
        let found: Vec<_> = all
            .into_iter()
            .filter(|l| l.event_id.to_string() == id.trim().to_ascii_lowercase())
            .collect();
        if found.is_empty() {
            return Err(DlqError::NotFound(id.to_owned()));
        }
        Ok(found)
    }
}

/// A stored letter in the services path's summary. There is no routing key:
/// on this backend an event never goes through a broker.
fn summary(l: &read_model::DeadLetter) -> DeadLetter {
    DeadLetter {
        id: l.event_id.to_string(),
        event_type: Some(l.event_type.clone()),
        reason: Some(l.reason.clone()),
        routing_key: None,
        failed_at: Some(l.failed_at.to_rfc3339()),
        bytes: l.body.len(),
    }
}

/// The services path's four sections: `properties` say where the letter is
/// stored, `headers` are empty (no broker message, no headers).
fn detail(l: &read_model::DeadLetter) -> Value {
    let body =
        serde_json::from_str::<Value>(&l.body).unwrap_or_else(|_| Value::String(l.body.clone()));
    json!({
        "dead_letter": summary(l),
        "properties": {
            "message_id": l.event_id.to_string(),
            "content_type": "application/json",
            "table": DEAD_LETTER_TABLE,
            "row_id": l.id,
            "stream_id": l.stream_id,
            "stream_version": l.stream_version,
        },
        "headers": {},
        "body": body,
    })
}
