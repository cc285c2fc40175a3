//! `COPY ... FROM STDIN (FORMAT binary)` encoding of `messages` rows: the
//! fastest way into Postgres, used by the rebuild's fast path and by the
//! benchmark's raw baseline (so both pay the same encoding).

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One row of `messages`, as the projector writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub channel_id: Uuid,
    pub seq: i64,
    pub message_id: Uuid,
    pub sender_id: Uuid,
    pub content: Option<String>,
    pub message_type: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

/// The column list the encoding follows.
pub const MESSAGE_COLUMNS: &str =
    "channel_id, seq, message_id, sender_id, content, message_type, created_at, edited_at, deleted";

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Builds the binary COPY stream of some rows.
#[derive(Debug)]
pub struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    /// A stream with the binary COPY header.
    pub fn new(rows_hint: usize) -> Self {
        let mut buf = Vec::with_capacity(19 + rows_hint * 160);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf }
    }

    /// Appends one message row.
    pub fn message(&mut self, row: &MessageRow) {
        self.buf.extend_from_slice(&9i16.to_be_bytes());
        self.uuid(row.channel_id);
        self.int8(row.seq);
        self.uuid(row.message_id);
        self.uuid(row.sender_id);
        self.text(row.content.as_deref());
        self.text(Some(&row.message_type));
        self.timestamp(Some(row.created_at));
        self.timestamp(row.edited_at);
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(row.deleted));
    }

    /// The bytes so far (to send a long stream in parts); the stream goes on.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The finished stream (or its last part), with the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    fn uuid(&mut self, id: Uuid) {
        self.buf.extend_from_slice(&16i32.to_be_bytes());
        self.buf.extend_from_slice(id.as_bytes());
    }

    fn int8(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(s) => {
                let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    fn timestamp(&mut self, v: Option<DateTime<Utc>>) {
        match v {
            None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(t) => {
                self.buf.extend_from_slice(&8i32.to_be_bytes());
                let micros = t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
                self.buf.extend_from_slice(&micros.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_fields_and_trailer() {
        let at = DateTime::from_timestamp(946_684_800, 1_000).expect("valid time");
        let row = MessageRow {
            channel_id: Uuid::nil(),
            seq: 1,
            message_id: Uuid::max(),
            sender_id: Uuid::nil(),
            content: None,
            message_type: "t".into(),
            created_at: at,
            edited_at: None,
            deleted: true,
        };
        let mut copy = BinaryCopy::new(1);
        copy.message(&row);
        let bytes = copy.finish();
        assert!(bytes.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(bytes.ends_with(&[0xff, 0xff]));
        // header 19 + count 2 + 3 uuids (20 each) + int8 12 + null 4 + text 5
        // + timestamp 12 + null 4 + bool 5 + trailer 2
        assert_eq!(bytes.len(), 19 + 2 + 60 + 12 + 4 + 5 + 12 + 4 + 5 + 2);
        // 1 microsecond after the Postgres epoch.
        let ts = &bytes[19 + 2 + 60 + 12 + 4 + 5 + 4..][..8];
        assert_eq!(ts, &1i64.to_be_bytes());
    }
}
