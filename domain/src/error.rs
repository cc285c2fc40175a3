//! Why the domain refused a command. Each refusal names its kind, which the
//! HTTP edge maps to a status code, and a stable snake_case code for clients.

/// The family a refusal belongs to; the edge maps it to 403/404/409/422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The actor may not do this (403).
    Forbidden,
    /// Something named by the command does not exist (404).
    NotFound,
    /// The thing to create already exists (409).
    Conflict,
    /// A business rule was violated (422).
    Unprocessable,
}

/// A command the domain refused. Never an infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("channel not found")]
    ChannelNotFound,
    #[error("message not found")]
    MessageNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("channel already exists")]
    ChannelAlreadyExists,
    #[error("user already exists")]
    UserAlreadyExists,
    #[error("you are not a member of this channel")]
    NotAMember,
    #[error("this user is not a member of the channel")]
    TargetNotAMember,
    #[error("you are banned from this channel")]
    Banned,
    #[error("this user is banned from the channel")]
    TargetBanned,
    #[error("this channel is private: an owner or admin must invite you")]
    PrivateChannel,
    #[error("only the channel's {required} may do this")]
    InsufficientRole { required: &'static str },
    #[error("you cannot act on a member whose role is equal to or above yours")]
    OutrankedTarget,
    #[error("only the sender may edit a message")]
    NotSender,
    #[error("the channel is archived")]
    ChannelArchived,
    #[error("the channel has reached its member limit")]
    ChannelFull,
    #[error("the owner cannot leave; transfer ownership first")]
    OwnerCannotLeave,
    #[error("the message was deleted")]
    MessageDeleted,
    #[error("the content contains a banned word")]
    BannedWord,
    #[error("seq {seq} is beyond the channel's last message ({last_seq})")]
    SeqOutOfRange { seq: u64, last_seq: u64 },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl DomainError {
    /// The family of this refusal.
    pub fn kind(&self) -> ErrorKind {
        use DomainError::*;
        match self {
            ChannelNotFound | MessageNotFound | UserNotFound | TargetNotAMember => {
                ErrorKind::NotFound
            }
            ChannelAlreadyExists | UserAlreadyExists => ErrorKind::Conflict,
            NotAMember
            | Banned
            | PrivateChannel
            | InsufficientRole { .. }
            | OutrankedTarget
            | NotSender => ErrorKind::Forbidden,
            TargetBanned
            | ChannelArchived
            | ChannelFull
            | OwnerCannotLeave
            | MessageDeleted
            | BannedWord
            | SeqOutOfRange { .. }
            | Invalid { .. } => ErrorKind::Unprocessable,
        }
    }

    /// A stable machine-readable code (the `error.code` of the HTTP contract).
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            ChannelNotFound => "channel_not_found",
            MessageNotFound => "message_not_found",
            UserNotFound => "user_not_found",
            ChannelAlreadyExists => "channel_exists",
            UserAlreadyExists => "user_exists",
            NotAMember => "not_a_member",
            TargetNotAMember => "target_not_a_member",
            Banned => "banned",
            TargetBanned => "target_banned",
            PrivateChannel => "private_channel",
            InsufficientRole { .. } => "insufficient_role",
            OutrankedTarget => "outranked",
            NotSender => "not_sender",
            ChannelArchived => "channel_archived",
            ChannelFull => "channel_full",
            OwnerCannotLeave => "owner_cannot_leave",
            MessageDeleted => "message_deleted",
            BannedWord => "banned_word",
            SeqOutOfRange { .. } => "seq_out_of_range",
            Invalid { .. } => "validation_failed",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
