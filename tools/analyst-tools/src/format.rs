//! The export formats. An NDJSON line is the event's envelope plus its
//! `cursor` — byte for byte what `GET /api/events` sends (keys in the same
//! order: serde_json sorts an object's keys, so the line's fields are declared
//! sorted). CSV follows RFC 4180: a header row, CRLF line ends, and any field
//! holding a comma, quote or line break quoted with its quotes doubled.

use chrono::{DateTime, SecondsFormat, Utc};
use event_store::RecordedEvent;
use serde::Serialize;
use std::io::{self, Write};

/// How exported events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One JSON envelope per line, with its `cursor`.
    #[default]
    Ndjson,
    /// RFC 4180 CSV with a header row; `data` and `metadata` as JSON text.
    Csv,
}

/// The CSV header row (without its line end).
pub const CSV_HEADER: &str = "cursor,global_position,recorded_at,stream_id,stream_version,event_id,event_type,schema_version,data,metadata";

/// The NDJSON line: the envelope's fields and `cursor`, in sorted key order.
#[derive(Serialize)]
struct Line<'a> {
    cursor: &'a str,
    data: &'a serde_json::Value,
    event_id: &'a uuid::Uuid,
    event_type: &'a str,
    global_position: i64,
    metadata: &'a serde_json::Value,
    recorded_at: &'a DateTime<Utc>,
    schema_version: u32,
    stream_id: &'a str,
    stream_version: u64,
}

/// Writes `event` in `format`; `scratch` is reused between calls.
pub fn write_event(
    out: &mut impl Write,
    format: Format,
    event: &RecordedEvent,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    match format {
        Format::Ndjson => write_ndjson(out, event),
        Format::Csv => write_csv_row(out, event, scratch),
    }
}

/// One NDJSON line, newline included.
pub fn write_ndjson(out: &mut impl Write, event: &RecordedEvent) -> io::Result<()> {
    let cursor = event.cursor().to_string();
    let line = Line {
        cursor: &cursor,
        data: &event.data,
        event_id: &event.event_id,
        event_type: &event.event_type,
        global_position: event.global_position,
        metadata: &event.metadata,
        recorded_at: &event.recorded_at,
        schema_version: event.schema_version,
        stream_id: &event.stream_id,
        stream_version: event.stream_version,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// The CSV header row, CRLF included.
pub fn write_csv_header(out: &mut impl Write) -> io::Result<()> {
    out.write_all(CSV_HEADER.as_bytes())?;
    out.write_all(b"\r\n")
}

/// One CSV row, CRLF included.
pub fn write_csv_row(
    out: &mut impl Write,
    event: &RecordedEvent,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    write!(
        out,
        "{},{},{},",
        event.cursor(),
        event.global_position,
        event
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )?;
    csv_field(out, event.stream_id.as_bytes())?;
    write!(out, ",{},{},", event.stream_version, event.event_id)?;
    csv_field(out, event.event_type.as_bytes())?;
    write!(out, ",{},", event.schema_version)?;
    for (i, json) in [&event.data, &event.metadata].into_iter().enumerate() {
        scratch.clear();
        serde_json::to_writer(&mut *scratch, json)?;
        csv_field(out, scratch)?;
        out.write_all(if i == 0 { b"," } else { b"\r\n" })?;
    }
    Ok(())
}

/// One field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(out: &mut impl Write, field: &[u8]) -> io::Result<()> {
    if !field
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        return out.write_all(field);
    }
    out.write_all(b"\"")?;
    for (i, part) in field.split(|b| *b == b'"').enumerate() {
        if i > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part)?;
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event() -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "MessageSent".into(),
            schema_version: 1,
            stream_id: "channel-x".into(),
            stream_version: 3,
            global_position: 77,
            transaction_id: 812,
            recorded_at: Utc::now(),
            data: json!({"content": "a \"quoted\", comma\nline", "seq": 1, "z": [1, 2.5, null]}),
            metadata: json!({"actor_id": "u", "correlation_id": "c"}),
        }
    }

    /// The HTTP events API builds its lines this way (query-service/src/export.rs).
    fn reference_line(event: &RecordedEvent) -> Vec<u8> {
        let mut envelope = serde_json::to_value(event).expect("serialises");
        if let Value::Object(fields) = &mut envelope {
            fields.insert("cursor".into(), Value::String(event.cursor().to_string()));
        }
        let mut bytes = serde_json::to_vec(&envelope).expect("serialises");
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn ndjson_lines_are_identical_to_the_http_api() {
        let e = event();
        let mut out = Vec::new();
        write_ndjson(&mut out, &e).expect("writes");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&reference_line(&e))
        );
    }

    #[test]
    fn csv_quotes_only_what_needs_it_and_doubles_quotes() {
        let mut out = Vec::new();
        for f in ["plain", "a,b", "say \"hi\"", "two\nlines", ""] {
            csv_field(&mut out, f.as_bytes()).expect("writes");
            out.push(b'|');
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"||"
        );
    }

    #[test]
    fn csv_row_has_ten_fields_and_the_envelope_time_format() {
        let e = event();
        let mut out = Vec::new();
        write_csv_row(&mut out, &e, &mut Vec::new()).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.ends_with("\r\n"));
        let line: Value = serde_json::from_slice(&reference_line(&e)).expect("json");
        let prefix = format!(
            "812-77,77,{},channel-x,3,",
            line["recorded_at"].as_str().expect("time")
        );
        assert!(text.starts_with(&prefix), "{text}");
        assert!(text.contains("\"{\"\"content\"\":"), "{text}");
    }
}
