//! The user aggregate: registration and the username rules.

use crate::DomainError;
use crate::event::{Event, UserRegistered};
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

/// Registers a new user under `user_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUser {
    pub user_id: UserId,
    pub username: String,
    pub display_name: Option<String>,
}

const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;
const MAX_DISPLAY_NAME_CHARS: usize = 64;

impl User {
    /// Decides a registration: the username is 3–32 of `[A-Za-z0-9_.-]`.
    pub fn decide(state: Option<&User>, command: RegisterUser) -> Result<Vec<Event>, DomainError> {
        if state.is_some() {
            return Err(DomainError::UserAlreadyExists);
        }
        let username = command.username;
        if !USERNAME_CHARS.contains(&username.chars().count()) {
            return Err(DomainError::invalid(
                "username",
                "must be 3 to 32 characters",
            ));
        }
        if !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(DomainError::invalid(
                "username",
                "may contain only letters, digits, '_', '.' and '-'",
            ));
        }
        if let Some(display_name) = &command.display_name {
            crate::check_name("display_name", display_name)?;
        }
        let display_name = command
            .display_name
            .map(|d| d.trim().to_owned())
            .unwrap_or_default();
        let display_name = if display_name.is_empty() {
            username.clone()
        } else {
            display_name
        };
        if display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(DomainError::invalid(
                "display_name",
                format!("at most {MAX_DISPLAY_NAME_CHARS} characters"),
            ));
        }
        Ok(vec![Event::UserRegistered(UserRegistered {
            user_id: command.user_id,
            username,
            display_name,
        })])
    }

    /// Folds one event into the state.
    pub fn evolve(state: Option<User>, event: &Event) -> Option<User> {
        match event {
            Event::UserRegistered(e) => Some(User {
                id: e.user_id,
                username: e.username.clone(),
                display_name: e.display_name.clone(),
            }),
            _ => state,
        }
    }
}
