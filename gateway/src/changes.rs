//! Edits and deletes reach a gateway two ways: the projector's announcement
//! (fast, but lost while the feed is down) and the log watch (certain, half a
//! second later). Each message's change is fanned out once, and never after a
//! newer change of the same message: the highest stream version fanned out
//! per message is remembered, for the most recently changed messages.

use std::collections::{HashMap, VecDeque};
use uuid::Uuid;

/// Messages whose last change is remembered: far more than are edited or
/// deleted within the log watch's lag behind the feed.
pub(crate) const REMEMBERED_CHANGES: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct ChangeMarks {
    version_of: HashMap<Uuid, u64>,
    /// Messages in the order they were first remembered: the oldest is forgotten first.
    order: VecDeque<Uuid>,
}

impl ChangeMarks {
    /// True if the change of `message` at `version` (of its channel's
    /// stream) is news: then it is remembered and must be fanned out.
    pub(crate) fn admit(&mut self, message: Uuid, version: u64) -> bool {
        match self.version_of.get_mut(&message) {
            Some(seen) if *seen >= version => false,
            Some(seen) => {
                *seen = version;
                true
            }
            None => {
                if self.order.len() == REMEMBERED_CHANGES
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.version_of.remove(&oldest);
                }
                self.version_of.insert(message, version);
                self.order.push_back(message);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_news_once_and_an_older_one_never() {
        let mut marks = ChangeMarks::default();
        let message = Uuid::new_v4();
        assert!(marks.admit(message, 5));
        assert!(!marks.admit(message, 5), "the same change twice");
        assert!(
            !marks.admit(message, 4),
            "an older change after a newer one"
        );
        assert!(marks.admit(message, 7));
        assert!(marks.admit(Uuid::new_v4(), 1), "another message");
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest() {
        let mut marks = ChangeMarks::default();
        let first = Uuid::new_v4();
        assert!(marks.admit(first, 1));
        for _ in 0..REMEMBERED_CHANGES {
            assert!(marks.admit(Uuid::new_v4(), 1));
        }
        assert_eq!(marks.version_of.len(), REMEMBERED_CHANGES);
        assert_eq!(marks.order.len(), REMEMBERED_CHANGES);
        assert!(marks.admit(first, 1), "forgotten, so news again");
    }
}
