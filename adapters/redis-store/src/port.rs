//! The `live-state` port on Redis: each method is the inherent one, with
//! Redis's error told as the port's.

use crate::{Presence, RateLimiter, RedisError, SocketSlots};
use futures_util::StreamExt;
use live_state::{
    LiveEvent, LiveEvents, LiveStateError, OnlineSnapshot, PresenceStore, RateLimited, SocketLimit,
    Throttle,
};
use std::collections::BTreeSet;
use uuid::Uuid;

impl From<RedisError> for LiveStateError {
    fn from(e: RedisError) -> Self {
        LiveStateError(e.to_string())
    }
}

#[async_trait::async_trait]
impl PresenceStore for Presence {
    async fn join(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        Ok(Presence::join(self, channel, user, connection).await?)
    }

    async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        Ok(Presence::leave(self, channel, user, connection).await?)
    }

    async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        Ok(Presence::refresh(self, channels, user, connection).await?)
    }

    async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, LiveStateError> {
        Ok(Presence::online_users(self, channel).await?)
    }

    async fn snapshot(
        &self,
        channel: Uuid,
        limit: usize,
    ) -> Result<OnlineSnapshot, LiveStateError> {
        Ok(Presence::snapshot(self, channel, limit).await?)
    }

    async fn sweep(&self, channel: Uuid) -> Result<(), LiveStateError> {
        Ok(Presence::sweep(self, channel).await?)
    }

    async fn publish(&self, event: &LiveEvent) -> Result<(), LiveStateError> {
        Ok(Presence::publish(self, event).await?)
    }

    async fn subscribe(&self) -> Result<LiveEvents, LiveStateError> {
        Ok(Presence::subscribe(self).await?.boxed())
    }

    async fn probe(&self) -> Result<(), LiveStateError> {
        Ok(Presence::probe(self).await?)
    }
}

#[async_trait::async_trait]
impl Throttle for RateLimiter {
    async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, LiveStateError> {
        Ok(RateLimiter::admit_key(self, key).await?)
    }
}

#[async_trait::async_trait]
impl SocketLimit for SocketSlots {
    async fn acquire(&self, user: Uuid, connection: Uuid) -> Result<bool, LiveStateError> {
        Ok(SocketSlots::acquire(self, user, connection).await?)
    }

    async fn refresh(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError> {
        Ok(SocketSlots::refresh(self, user, connection).await?)
    }

    async fn release(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError> {
        Ok(SocketSlots::release(self, user, connection).await?)
    }
}

#[async_trait::async_trait]
impl live_state::SocketCensus for crate::RedisStore {
    async fn report(&self, instance: &str, sockets: usize) -> Result<(), LiveStateError> {
        Ok(self.report_sockets(instance, sockets).await?)
    }

    async fn counts(&self) -> Result<Vec<(String, u64)>, LiveStateError> {
        Ok(self.gateway_sockets().await?)
    }
}
