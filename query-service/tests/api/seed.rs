//! Seeding: plain SQL INSERTs into the read model (the projector that
//! normally fills it is not under test here) and `append` into the event log.

use crate::helpers::{TestApp, at, t0};
use event_store::{ExpectedVersion, NewEvent, PgEventStore, RecordedEvent};
use serde_json::json;
use uuid::Uuid;

/// Seeding: plain SQL into the read model, `append` into the log.
impl<S> TestApp<S> {
    /// A user row; its display name is the username in capitals.
    pub async fn user(&self, name: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO rm.users (user_id, username, display_name, registered_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(name.to_uppercase())
            .bind(t0())
            .execute(&self.read.pool)
            .await
            .expect("insert user");
        id
    }

    /// A channel created at `created` (minutes after t0).
    pub async fn channel(&self, name: &str, kind: &str, owner: Uuid, created: i64) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO rm.channels (channel_id, name, kind, max_members, owner_id, created_at, updated_at) \
             VALUES ($1, $2, $3, 50, $4, $5, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(kind)
        .bind(owner)
        .bind(at(created))
        .execute(&self.read.pool)
        .await
        .expect("insert channel");
        id
    }

    /// A membership joined at `joined` (minutes after t0), read up to `read_seq`.
    pub async fn member(&self, channel: Uuid, user: Uuid, role: &str, joined: i64, read_seq: i64) {
        sqlx::query(
            "INSERT INTO rm.members (channel_id, user_id, role, read_seq, joined_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(channel)
        .bind(user)
        .bind(role)
        .bind(read_seq)
        .bind(at(joined))
        .execute(&self.read.pool)
        .await
        .expect("insert member");
    }

    pub async fn mute(&self, channel: Uuid, user: Uuid) {
        sqlx::query("UPDATE rm.members SET muted = true WHERE channel_id = $1 AND user_id = $2")
            .bind(channel)
            .bind(user)
            .execute(&self.read.pool)
            .await
            .expect("mute");
    }

    /// Message `seq` sent `seq` minutes after t0, with content `m{seq}`; moves the channel's last_seq.
    pub async fn message(&self, channel: Uuid, seq: i64, sender: Uuid) -> Uuid {
        self.message_at(channel, seq, sender, seq).await
    }

    pub async fn message_at(&self, channel: Uuid, seq: i64, sender: Uuid, minute: i64) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO rm.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'text', $6)",
        )
        .bind(channel)
        .bind(seq)
        .bind(id)
        .bind(sender)
        .bind(format!("m{seq}"))
        .bind(at(minute))
        .execute(&self.read.pool)
        .await
        .expect("insert message");
        sqlx::query(
            "UPDATE rm.channels SET last_seq = greatest(last_seq, $2) WHERE channel_id = $1",
        )
        .bind(channel)
        .bind(seq)
        .execute(&self.read.pool)
        .await
        .expect("move last_seq");
        id
    }

    /// Messages 1..=n, all from `sender`.
    pub async fn messages(&self, channel: Uuid, n: i64, sender: Uuid) {
        sqlx::query(
            "INSERT INTO rm.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
             SELECT $1, s, gen_random_uuid(), $2, 'm' || s, 'text', $3 + make_interval(mins => s::int) \
             FROM generate_series(1, $4::bigint) AS s",
        )
        .bind(channel)
        .bind(sender)
        .bind(t0())
        .bind(n)
        .execute(&self.read.pool)
        .await
        .expect("insert messages");
        sqlx::query(
            "UPDATE rm.channels SET last_seq = greatest(last_seq, $2) WHERE channel_id = $1",
        )
        .bind(channel)
        .bind(n)
        .execute(&self.read.pool)
        .await
        .expect("move last_seq");
    }

    /// Turns message `seq` into a tombstone, the way the projector does.
    pub async fn delete_message(&self, channel: Uuid, seq: i64) {
        sqlx::query("UPDATE rm.messages SET deleted = true, content = NULL WHERE channel_id = $1 AND seq = $2")
            .bind(channel)
            .bind(seq)
            .execute(&self.read.pool)
            .await
            .expect("delete message");
    }

    pub async fn edit_message(&self, channel: Uuid, seq: i64, content: &str, minute: i64) {
        sqlx::query("UPDATE rm.messages SET content = $3, edited_at = $4 WHERE channel_id = $1 AND seq = $2")
            .bind(channel)
            .bind(seq)
            .bind(content)
            .bind(at(minute))
            .execute(&self.read.pool)
            .await
            .expect("edit message");
    }

    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.log.pool.clone())
    }

    /// Appends events of the given types to `stream` in one batch.
    pub async fn append(&self, stream: &str, types: &[&str]) -> Vec<RecordedEvent> {
        self.store()
            .append(stream, ExpectedVersion::Any, &new_events(types))
            .await
            .expect("append")
    }

    /// Waits until every event in the log is below the cluster's oldest running
    /// transaction (another test's open transaction may hold readers back briefly).
    pub async fn settle(&self) {
        for _ in 0..600 {
            let hidden: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
            )
            .fetch_one(&self.log.pool)
            .await
            .expect("count hidden");
            if hidden == 0 {
                return;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("events stayed behind a running transaction for 30 s");
    }

    /// Event ids in commit order, straight from SQL.
    pub async fn commit_order(&self) -> Vec<String> {
        sqlx::query_scalar::<_, Uuid>(
            "SELECT event_id FROM events ORDER BY transaction_id, global_position",
        )
        .fetch_all(&self.log.pool)
        .await
        .expect("commit order")
        .into_iter()
        .map(|id| id.to_string())
        .collect()
    }
}

pub fn new_events(types: &[&str]) -> Vec<NewEvent> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| NewEvent {
            event_id: Uuid::new_v4(),
            event_type: (*t).to_owned(),
            schema_version: 1,
            data: json!({ "n": i, "kind": t }),
            metadata: json!({ "actor_id": Uuid::nil() }),
        })
        .collect()
}
