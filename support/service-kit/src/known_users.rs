//! Whether a token's subject is a registered user (issue #11). A valid
//! signature proves only that the secret signed the token: a token for an id
//! that was never registered (forged with a leaked secret, issued by another
//! deployment that shares it, made by a test) must open nothing — no channel,
//! no message, no socket, no read.
//!
//! The answer comes from the event log, the one record that knows a user the
//! moment registration returns (the read model may lag behind it): the user's
//! stream exists. Users are never deleted (the user aggregate has no such
//! event), so a positive answer is remembered for good, in a bounded set;
//! only ids not seen before cost a lookup (one indexed read).

use crate::ApiError;
use actix_web::{HttpRequest, web};
use event_store::EventLog;
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};
use uuid::Uuid;

/// Ids remembered as registered, at most; past it the set starts over.
const REMEMBERED: usize = 100_000;

/// Asks whether a user id is registered.
pub type Lookup = dyn Fn(Uuid) -> BoxFuture<'static, Result<bool, sqlx::Error>> + Send + Sync;

/// The registered-user check every token gate runs after the signature
/// (register one per process as `web::Data<KnownUsers>`; [`AuthUser`] and
/// [`require_registered`] use it when it is there).
///
/// [`AuthUser`]: crate::AuthUser
pub struct KnownUsers {
    lookup: Box<Lookup>,
    seen: RwLock<HashSet<Uuid>>,
}

impl std::fmt::Debug for KnownUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownUsers")
            .field("remembered", &self.remembered())
            .finish_non_exhaustive()
    }
}

impl KnownUsers {
    /// Users whose `user-{id}` stream exists in `log`.
    pub fn in_log(log: Arc<dyn EventLog>) -> Self {
        Self::new(move |id| {
            let log = log.clone();
            Box::pin(async move {
                let stream = domain::user_stream(domain::UserId(id));
                Ok(log.stream_version(&stream).await? > 0)
            })
        })
    }

    /// Users `lookup` says are registered.
    pub fn new(
        lookup: impl Fn(Uuid) -> BoxFuture<'static, Result<bool, sqlx::Error>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            lookup: Box::new(lookup),
            seen: RwLock::new(HashSet::new()),
        }
    }

    /// Whether `user` is registered.
    pub async fn is_registered(&self, user: Uuid) -> Result<bool, sqlx::Error> {
        if self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&user)
        {
            return Ok(true);
        }
        let registered = (self.lookup)(user).await?;
        if registered {
            let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
            seen.insert(user);
        }
        Ok(registered)
    }

    /// How many ids are remembered as registered.
    pub fn remembered(&self) -> usize {
        self.seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// 401 `invalid_token` unless `user` is registered, when the host registered
/// [`KnownUsers`] (every server binary does; an app built without it, as unit
/// tests build theirs, checks signatures only). A failed lookup is a 503.
pub async fn require_registered(req: &HttpRequest, user: Uuid) -> Result<(), ApiError> {
    let Some(known) = req.app_data::<web::Data<KnownUsers>>().cloned() else {
        return Ok(());
    };
    check(&known, user).await
}

pub(crate) async fn check(known: &KnownUsers, user: Uuid) -> Result<(), ApiError> {
    match known.is_registered(user).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::unauthorized(
            "invalid_token",
            "the token names no registered user",
        )),
        Err(e) => Err(ApiError::unavailable(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn registered_ids_are_looked_up_once_and_unknown_ones_every_time() {
        let registered = Uuid::new_v4();
        let lookups = Arc::new(AtomicUsize::new(0));
        let counted = lookups.clone();
        let known = KnownUsers::new(move |id| {
            counted.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(id == registered) })
        });
        for _ in 0..3 {
            assert!(known.is_registered(registered).await.expect("lookup"));
        }
        assert_eq!(lookups.load(Ordering::Relaxed), 1);
        let stranger = Uuid::new_v4();
        for _ in 0..3 {
            assert!(!known.is_registered(stranger).await.expect("lookup"));
        }
        // An unknown id may register later: it is asked again each time.
        assert_eq!(lookups.load(Ordering::Relaxed), 4);
        assert_eq!(known.remembered(), 1);
        let refused = check(&known, stranger).await.expect_err("refused");
        assert_eq!(
            (refused.status.as_u16(), refused.code),
            (401, "invalid_token")
        );
    }

    #[tokio::test]
    async fn a_failed_lookup_is_unavailable_not_unauthorized() {
        let known = KnownUsers::new(|_| Box::pin(async { Err(sqlx::Error::PoolTimedOut) }));
        let error = check(&known, Uuid::new_v4()).await.expect_err("refused");
        assert_eq!((error.status.as_u16(), error.code), (503, "unavailable"));
    }
}
