//! The part every channel command shares: the caller, their request id and
//! headers turned into a `CommandContext`, and the service to run it on.

use super::context;
use crate::CommandError;
use crate::executor::{CommandContext, CommandService, Executed, Intent};
use crate::idempotency::{client_msg_key, fingerprint};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use service_kit::{ApiError, AuthUser, RequestId};
use uuid::Uuid;

/// Extracted before the body, so a missing token is a 401 whatever the body.
pub(super) struct Commander {
    service: web::Data<CommandService>,
    pub(super) ctx: CommandContext,
    pub(super) user_id: Uuid,
    /// Method and path, which an `Idempotency-Key` is bound to with the body.
    request: (String, String),
    /// Whether the key names the request (`Idempotency-Key`), not a message.
    key_binds_request: bool,
}

impl FromRequest for Commander {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        let request_id = RequestId::from_request(req, payload).into_inner();
        let req = req.clone();
        Box::pin(async move { commander(&req, user.await?, request_id?) })
    }
}

fn commander(
    req: &HttpRequest,
    user: AuthUser,
    request_id: RequestId,
) -> Result<Commander, ApiError> {
    let service = req
        .app_data::<web::Data<CommandService>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"CommandService is not registered as app data"))?;
    let ctx = context(&user, request_id, req.headers())?;
    Ok(Commander {
        service,
        key_binds_request: ctx.idempotency_key.is_some(),
        ctx,
        user_id: user.user_id,
        request: (req.method().to_string(), req.path().to_ascii_lowercase()),
    })
}

impl Commander {
    pub(super) fn service(&self) -> &CommandService {
        &self.service
    }

    /// Keys the command by the sender's `client_msg_id` in `channel_id`, in
    /// place of any `Idempotency-Key`: a retry answers the first result.
    pub(super) fn key_by_client_msg_id(
        &mut self,
        channel_id: Uuid,
        client_msg_id: &str,
    ) -> Result<(), ApiError> {
        let key = client_msg_key(self.user_id.into(), channel_id.into(), client_msg_id)
            .map_err(CommandError::from)?;
        self.ctx.idempotency_key = Some(key);
        self.key_binds_request = false;
        Ok(())
    }

    /// Runs `intent` on `channel_id`; `event_type` is what its first event is,
    /// `body` the request's parsed body (`&()` for none).
    pub(super) async fn run(
        &self,
        channel_id: Uuid,
        intent: Intent,
        event_type: &str,
        body: &impl Serialize,
    ) -> Result<Executed, ApiError> {
        let mut ctx = self.ctx.clone();
        if self.key_binds_request {
            let (method, path) = &self.request;
            ctx.request_fingerprint = Some(fingerprint(method, path, body));
        }
        Ok(self
            .service
            .execute(channel_id.into(), intent, &ctx, event_type)
            .await?)
    }
}
