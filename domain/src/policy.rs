//! Configurable message rules (the seed's `MessageSendValidator`).

use crate::DomainError;

/// What a message must satisfy to be accepted. Configured at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePolicy {
    /// Maximum content length in characters (Unicode scalar values).
    pub max_content_chars: usize,
    /// Words refused anywhere in a message, compared case-insensitively as whole words.
    banned_words: Vec<String>,
    /// Accepted values of a message's `type`.
    pub message_types: Vec<String>,
}

impl Default for MessagePolicy {
    fn default() -> Self {
        Self::new(4000, Vec::<String>::new())
    }
}

impl MessagePolicy {
    /// A policy with the given length limit and banned words; types `text`, `image`, `file`.
    pub fn new(
        max_content_chars: usize,
        banned_words: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Self {
        Self {
            max_content_chars,
            banned_words: banned_words
                .into_iter()
                .map(|w| w.as_ref().trim().to_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
            message_types: ["text", "image", "file"].map(String::from).to_vec(),
        }
    }

    /// Checks a message's content.
    pub fn check_content(&self, content: &str) -> Result<(), DomainError> {
        crate::check_text("content", content)?;
        if content.trim().is_empty() {
            return Err(DomainError::invalid("content", "must not be empty"));
        }
        let chars = content.chars().count();
        if chars > self.max_content_chars {
            return Err(DomainError::invalid(
                "content",
                format!(
                    "{chars} characters is over the limit of {}",
                    self.max_content_chars
                ),
            ));
        }
        if !self.banned_words.is_empty() {
            let lowered = content.to_lowercase();
            let banned = lowered
                .split(|c: char| !c.is_alphanumeric())
                .any(|word| self.banned_words.iter().any(|b| b == word));
            if banned {
                return Err(DomainError::BannedWord);
            }
        }
        Ok(())
    }

    /// Checks a message's type.
    pub fn check_type(&self, message_type: &str) -> Result<(), DomainError> {
        if self.message_types.iter().any(|t| t == message_type) {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "type",
                format!("must be one of {}", self.message_types.join(", ")),
            ))
        }
    }
}
