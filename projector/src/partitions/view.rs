//! What a `run` knows of its partitions, for the gauges and the embedder:
//! which it holds and how many deliveries each brought.

use broker::Partitions;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which partitions a `run` is active on and what each delivered: what the
/// `projector_partition_active` gauges show, readable by the embedding
/// process and by tests.
#[derive(Debug, Default)]
pub struct PartitionView {
    state: Mutex<ViewState>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct ViewState {
    active: Vec<bool>,
    pub(super) delivered: Vec<u64>,
    pub(super) slot: Option<u16>,
}

impl PartitionView {
    /// The partitions this run holds: it prefers them, or the broker made it
    /// their active consumer since it last subscribed.
    pub fn active(&self) -> Vec<u16> {
        let state = self.lock();
        (0..state.active.len() as u16)
            .filter(|p| state.active[usize::from(*p)])
            .collect()
    }

    /// Deliveries per partition since the start.
    pub fn delivered(&self) -> Vec<u64> {
        self.lock().delivered.clone()
    }

    /// This run's member slot (None: not split, or not joined yet).
    pub fn slot(&self) -> Option<u16> {
        self.lock().slot
    }

    pub(super) fn reset(&self, partitions: Partitions) {
        let mut state = self.lock();
        let n = usize::from(partitions.count());
        state.active = vec![false; n];
        state.delivered.resize(n, 0);
        state.slot = None;
        for p in 0..partitions.count() {
            gauge(p, false);
        }
    }

    pub(super) fn set_active(&self, partition: u16, active: bool) {
        if let Some(a) = self.lock().active.get_mut(usize::from(partition)) {
            if *a != active {
                *a = active;
                gauge(partition, active);
            }
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ViewState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn gauge(partition: u16, active: bool) {
    metrics::gauge!("projector_partition_active", "partition" => partition.to_string())
        .set(if active { 1.0 } else { 0.0 });
}
