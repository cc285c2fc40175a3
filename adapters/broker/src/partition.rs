//! Projector partitions (DESIGN §10): the events of `chat.exchange` split
//! into `CHAT_PROJECTOR_PARTITIONS` queues by stream, so several projector
//! processes share the work while each stream keeps its order.
//!
//! A stream's partition is FNV-1a (32 bit) of its id modulo the count: a
//! fixed function of the id alone, so every relay instance, every release and
//! every restart sends a stream to the same queue (std's `RandomState` hashes
//! differently in each process and would scatter a stream's events). The
//! relay stamps it on each message as the `chat-partition` header, which the
//! headers exchange `chat.partitions` matches against each queue's binding.
//! RabbitMQ 3.10 has no super streams and the consistent-hash exchange is a
//! plugin a fresh node lacks, hence a header computed by the publisher.

/// The variable that sets the number of partitions.
pub const PARTITIONS_VAR: &str = "CHAT_PROJECTOR_PARTITIONS";
/// The header the relay stamps with the partition number (as a string).
pub const PARTITION_HEADER: &str = "chat-partition";
/// The most partitions: each is a quorum queue and a channel in every projector.
pub const MAX_PARTITIONS: u16 = 64;

/// A `CHAT_PROJECTOR_PARTITIONS` that is not a count in range.
#[derive(Debug, thiserror::Error)]
#[error("{PARTITIONS_VAR}={0:?}: expected a whole number from 1 to {MAX_PARTITIONS}")]
pub struct PartitionsError(pub String);

/// How many partitions the projector's queue is split into (1: the single
/// `projector.events` of before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitions(u16);

impl Default for Partitions {
    fn default() -> Self {
        Self::ONE
    }
}

impl Partitions {
    /// One queue, `projector.events`: the topology without partitions.
    pub const ONE: Partitions = Partitions(1);

    /// `count` partitions (1 to `MAX_PARTITIONS`).
    pub fn new(count: u16) -> Result<Self, PartitionsError> {
        if (1..=MAX_PARTITIONS).contains(&count) {
            Ok(Self(count))
        } else {
            Err(PartitionsError(count.to_string()))
        }
    }

    /// `CHAT_PROJECTOR_PARTITIONS` (unset or empty: 1).
    pub fn from_env() -> Result<Self, PartitionsError> {
        match std::env::var(PARTITIONS_VAR) {
            Ok(value) if !value.trim().is_empty() => Self::parse(&value),
            _ => Ok(Self::ONE),
        }
    }

    /// What processes that only declare the topology use: the variable, or
    /// 1 with an error logged when it is malformed (the relay and the
    /// projector refuse to start with it, so nothing flows meanwhile).
    pub fn configured() -> Self {
        Self::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "using 1 partition");
            Self::ONE
        })
    }

    fn parse(value: &str) -> Result<Self, PartitionsError> {
        value
            .trim()
            .parse::<u16>()
            .ok()
            .and_then(|n| Self::new(n).ok())
            .ok_or_else(|| PartitionsError(value.to_owned()))
    }

    /// How many there are.
    pub fn count(self) -> u16 {
        self.0
    }

    /// Whether the queue is split (more than one partition).
    pub fn split(self) -> bool {
        self.0 > 1
    }

    /// The partition of stream `stream_id`.
    pub fn of_stream(self, stream_id: &str) -> u16 {
        (fnv1a(stream_id.as_bytes()) % u32::from(self.0)) as u16
    }

    /// The queue of partition `partition`: `projector.events` when there is
    /// one, else `projector.events.{partition}`.
    pub fn queue(self, partition: u16) -> String {
        if self.split() {
            format!("{}.{partition}", crate::PROJECTOR_QUEUE)
        } else {
            crate::PROJECTOR_QUEUE.to_owned()
        }
    }
}

/// FNV-1a, 32 bit: small, fixed, and spreads short ids well.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_published_fnv1a() {
        // Reference values of FNV-1a 32: a changed hash would move streams
        // between partitions on an upgrade.
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_stream_always_lands_in_one_partition_and_all_are_used() {
        let four = Partitions::new(4).expect("4");
        let mut used = [0u32; 4];
        for n in 0..400 {
            let stream = format!("channel-{}", uuid_like(n));
            let p = four.of_stream(&stream);
            assert_eq!(p, four.of_stream(&stream), "stable");
            used[usize::from(p)] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "spread: {used:?}");
        assert_eq!(Partitions::ONE.of_stream("channel-x"), 0);
    }

    #[test]
    fn queue_names_keep_the_single_queue_for_one() {
        assert_eq!(Partitions::ONE.queue(0), "projector.events");
        assert_eq!(
            Partitions::new(8).expect("8").queue(7),
            "projector.events.7"
        );
    }

    #[test]
    fn counts_out_of_range_are_refused() {
        assert!(Partitions::new(0).is_err());
        assert!(Partitions::new(MAX_PARTITIONS + 1).is_err());
        assert!(Partitions::parse("four").is_err());
        assert_eq!(Partitions::parse(" 8 ").expect("8").count(), 8);
    }

    fn uuid_like(n: u32) -> String {
        format!("0190c6d2-58e4-7c1e-9f4a-{n:012x}")
    }
}
