//! The part every channel command shares: the caller, their request id and
//! headers turned into a `CommandContext`, and the service to run it on.

use super::context;
use crate::executor::{CommandContext, CommandService, Executed, Intent};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use service_kit::{ApiError, AuthUser, RequestId};
use std::future::{Ready, ready};
use uuid::Uuid;

/// Extracted before the body, so a missing token is a 401 whatever the body.
pub(super) struct Commander {
    service: web::Data<CommandService>,
    pub(super) ctx: CommandContext,
    pub(super) user_id: Uuid,
}

impl FromRequest for Commander {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(commander(req, payload))
    }
}

fn commander(req: &HttpRequest, payload: &mut Payload) -> Result<Commander, ApiError> {
    let user = AuthUser::from_request(req, payload).into_inner()?;
    let request_id = RequestId::from_request(req, payload).into_inner()?;
    let service = req
        .app_data::<web::Data<CommandService>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"CommandService is not registered as app data"))?;
    let ctx = context(&user, request_id, req.headers())?;
    Ok(Commander {
        service,
        ctx,
        user_id: user.user_id,
    })
}

impl Commander {
    pub(super) fn service(&self) -> &CommandService {
        &self.service
    }

    /// Runs `intent` on `channel_id`; `event_type` is what its first event is.
    pub(super) async fn run(
        &self,
        channel_id: Uuid,
        intent: Intent,
        event_type: &str,
    ) -> Result<Executed, ApiError> {
        Ok(self
            .service
            .execute(channel_id.into(), intent, &self.ctx, event_type)
            .await?)
    }
}
