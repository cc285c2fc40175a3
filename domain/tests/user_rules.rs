//! Registration rules of `User::decide` and the fold of `User::evolve`.

mod common;

use common::*;
use domain::*;

fn register(username: &str, display_name: Option<&str>) -> RegisterUser {
    RegisterUser {
        user_id: ALICE,
        username: username.into(),
        display_name: display_name.map(String::from),
    }
}

fn registered(username: &str, display_name: &str) -> Event {
    Event::UserRegistered(UserRegistered {
        user_id: ALICE,
        username: username.into(),
        display_name: display_name.into(),
    })
}

#[test]
fn register_emits_user_registered_and_evolves_into_the_user() {
    let user = given_user([])
        .when(register("alice", Some("Alice A.")))
        .then([registered("alice", "Alice A.")]);
    assert_eq!(
        user,
        User {
            id: ALICE,
            username: "alice".into(),
            display_name: "Alice A.".into()
        }
    );
}

#[test]
fn display_name_defaults_to_the_username() {
    given_user([])
        .when(register("alice", None))
        .then([registered("alice", "alice")]);
    given_user([])
        .when(register("alice", Some("")))
        .then([registered("alice", "alice")]);
    given_user([])
        .when(register("alice", Some("   ")))
        .then([registered("alice", "alice")]);
}

#[test]
fn display_name_is_trimmed() {
    given_user([])
        .when(register("alice", Some("  Alice  ")))
        .then([registered("alice", "Alice")]);
}

#[test]
fn username_too_short_or_too_long_is_refused() {
    for username in ["", "a", "ab", &"a".repeat(33)] {
        given_user([])
            .when(register(username, None))
            .then_invalid("username");
    }
}

#[test]
fn username_at_the_length_bounds_is_accepted() {
    for username in ["abc".to_owned(), "a".repeat(32)] {
        given_user([])
            .when(register(&username, None))
            .then([registered(&username, &username)]);
    }
}

#[test]
fn username_with_bad_chars_is_refused() {
    for username in [
        "al ice",
        "alice!",
        "al@ce",
        "élise",
        "한국어이름",
        "alice\n",
        " alice",
        "a/b/c",
    ] {
        given_user([])
            .when(register(username, None))
            .then_invalid("username");
    }
}

#[test]
fn username_allows_letters_digits_underscore_dot_and_dash() {
    given_user([])
        .when(register("A_b.c-9", None))
        .then([registered("A_b.c-9", "A_b.c-9")]);
}

#[test]
fn display_name_over_64_chars_is_refused() {
    given_user([])
        .when(register("alice", Some(&"é".repeat(65))))
        .then_invalid("display_name");
    let sixty_four = "é".repeat(64);
    given_user([])
        .when(register("alice", Some(&sixty_four)))
        .then([registered("alice", &sixty_four)]);
}

#[test]
fn register_when_the_user_exists_is_refused() {
    given_user([registered("alice", "Alice")])
        .when(register("other", None))
        .then_error(DomainError::UserAlreadyExists);
}

#[test]
fn user_evolve_ignores_channel_events() {
    let user = Some(User {
        id: ALICE,
        username: "alice".into(),
        display_name: "Alice".into(),
    });
    assert_eq!(
        User::evolve(user.clone(), &created(ChannelKind::Public, None)),
        user
    );
    assert_eq!(User::evolve(None, &joined(ALICE)), None);
}
