//! Socket counts per gateway instance, in memory (one process: usually one).

use live_state::{CENSUS_TTL, LiveStateError, SocketCensus};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// The last count of each instance, with when it came.
#[derive(Debug, Default)]
pub struct MemoryCensus {
    reports: Mutex<BTreeMap<String, (u64, Instant)>>,
}

#[async_trait::async_trait]
impl SocketCensus for MemoryCensus {
    async fn report(&self, instance: &str, sockets: usize) -> Result<(), LiveStateError> {
        let mut reports = self
            .reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reports.retain(|_, (_, at)| at.elapsed() < CENSUS_TTL);
        reports.insert(instance.to_owned(), (sockets as u64, Instant::now()));
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<(String, u64)>, LiveStateError> {
        let reports = self
            .reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(reports
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < CENSUS_TTL)
            .map(|(instance, (count, _))| (instance.clone(), *count))
            .collect())
    }
}
