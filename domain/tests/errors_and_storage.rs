//! `DomainError::kind()`/`code()`, stream names, and the stored form of events
//! (`to_stored`/`from_stored`, including the ChannelCreated v1 upcast).

mod common;

use common::*;
use domain::*;
use serde_json::json;

#[test]
fn error_kinds_map_to_their_families() {
    let cases = [
        (DomainError::ChannelNotFound, ErrorKind::NotFound),
        (DomainError::MessageNotFound, ErrorKind::NotFound),
        (DomainError::TargetNotAMember, ErrorKind::NotFound),
        (DomainError::ChannelAlreadyExists, ErrorKind::Conflict),
        (DomainError::UserAlreadyExists, ErrorKind::Conflict),
        (DomainError::NotAMember, ErrorKind::Forbidden),
        (DomainError::Banned, ErrorKind::Forbidden),
        (
            DomainError::InsufficientRole { required: "owner" },
            ErrorKind::Forbidden,
        ),
        (DomainError::OutrankedTarget, ErrorKind::Forbidden),
        (DomainError::NotSender, ErrorKind::Forbidden),
        (DomainError::TargetBanned, ErrorKind::Unprocessable),
        (DomainError::ChannelFull, ErrorKind::Unprocessable),
        (DomainError::BannedWord, ErrorKind::Unprocessable),
        (
            DomainError::SeqOutOfRange {
                seq: 3,
                last_seq: 2,
            },
            ErrorKind::Unprocessable,
        ),
        (
            DomainError::Invalid {
                field: "name",
                reason: "x".into(),
            },
            ErrorKind::Unprocessable,
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
}

#[test]
fn error_codes_are_stable_snake_case() {
    let cases = [
        (DomainError::ChannelAlreadyExists, "channel_exists"),
        (DomainError::UserAlreadyExists, "user_exists"),
        (DomainError::NotAMember, "not_a_member"),
        (
            DomainError::InsufficientRole {
                required: "owner or admin",
            },
            "insufficient_role",
        ),
        (DomainError::OutrankedTarget, "outranked"),
        (DomainError::OwnerCannotLeave, "owner_cannot_leave"),
        (
            DomainError::SeqOutOfRange {
                seq: 9,
                last_seq: 1,
            },
            "seq_out_of_range",
        ),
        (
            DomainError::Invalid {
                field: "content",
                reason: "empty".into(),
            },
            "validation_failed",
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code, "{error:?}");
    }
}

#[test]
fn errors_returned_by_decide_carry_their_kind_and_code() {
    let full = given([created(ChannelKind::Public, Some(1))])
        .when(ALICE, ChannelCommand::Join)
        .result;
    let error = full.expect_err("full");
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Unprocessable, "channel_full")
    );

    let private = given(private_channel())
        .when(CAROL, ChannelCommand::Join)
        .result;
    let error = private.expect_err("private");
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Forbidden, "private_channel")
    );

    let range = given(public_channel())
        .when(ALICE, ChannelCommand::MarkRead { seq: 4 })
        .result;
    let error = range.expect_err("out of range");
    assert_eq!(
        error.to_string(),
        "seq 4 is beyond the channel's last message (0)"
    );
}

#[test]
fn stream_names_embed_the_id() {
    assert_eq!(channel_stream(CH), format!("channel-{}", CH.0));
    assert_eq!(user_stream(ALICE), format!("user-{}", ALICE.0));
}

#[test]
fn stored_form_names_the_type_and_current_version() {
    let stored = created(ChannelKind::Private, Some(5)).to_stored();
    assert_eq!(stored.event_type, "ChannelCreated");
    assert_eq!(stored.schema_version, 2);
    assert_eq!(
        stored.data,
        json!({"channel_id": CH.0, "name": "general", "kind": "private", "max_members": 5, "owner_id": OWNER.0})
    );
    let stored = joined(ALICE).to_stored();
    assert_eq!(
        (stored.event_type.as_str(), stored.schema_version),
        ("MemberJoined", 1)
    );
    assert_eq!(stored.data, json!({"channel_id": CH.0, "user_id": ALICE.0}));
}

#[test]
fn message_sent_without_client_msg_id_omits_it_and_round_trips() {
    let event = sent(1, 1, ALICE, "hi");
    let stored = event.to_stored();
    assert!(
        stored.data.get("client_msg_id").is_none(),
        "{:?}",
        stored.data
    );
    assert_eq!(Event::from_stored(&stored).expect("decodes"), event);
}

#[test]
fn every_event_type_round_trips_through_the_stored_form() {
    let events = [
        Event::UserRegistered(UserRegistered {
            user_id: ALICE,
            username: "alice".into(),
            display_name: "A".into(),
        }),
        created(ChannelKind::Public, None),
        created(ChannelKind::Private, Some(3)),
        joined(ALICE),
        invited(BOB, OWNER),
        left(ALICE),
        kicked(ALICE, OWNER),
        banned(ALICE, ADMIN),
        unbanned(ALICE, ADMIN),
        role_changed(ALICE, Role::Owner, OWNER),
        archived(OWNER),
        muted(ALICE),
        unmuted(ALICE),
        sent(1, 1, ALICE, "héllo 한"),
        Event::MessageSent(MessageSent {
            channel_id: CH,
            message_id: msg_id(2),
            seq: 2,
            sender_id: BOB,
            content: "x".into(),
            message_type: "file".into(),
            client_msg_id: Some("c-2".into()),
        }),
        edited(1, 1, ALICE, "edited"),
        deleted(1, 1, ALICE, ADMIN),
        read_up_to(ALICE, 2),
    ];
    for event in events {
        assert_eq!(
            Event::from_stored(&event.to_stored()).expect("decodes"),
            event
        );
    }
}

#[test]
fn channel_created_v1_is_upcast_before_decoding() {
    let stored = StoredEvent {
        event_type: "ChannelCreated".into(),
        schema_version: 1,
        data: json!({"channel_id": CH.0, "name": "general", "private": false, "owner_id": OWNER.0}),
    };
    assert_eq!(
        Event::from_stored(&stored).expect("v1 decodes"),
        created(ChannelKind::Public, None)
    );
}

#[test]
fn unknown_types_versions_and_shapes_do_not_decode() {
    let bad = |event_type: &str, schema_version, data| StoredEvent {
        event_type: event_type.into(),
        schema_version,
        data,
    };
    assert!(matches!(
        Event::from_stored(&bad("Nope", 1, json!({}))),
        Err(DecodeError::Upcast(UpcastError::UnknownType(_)))
    ));
    assert!(matches!(
        Event::from_stored(&bad("MemberJoined", 2, json!({}))),
        Err(DecodeError::Upcast(UpcastError::UnknownVersion { .. }))
    ));
    assert!(matches!(
        Event::from_stored(&bad("MemberJoined", 0, json!({}))),
        Err(DecodeError::Upcast(UpcastError::UnknownVersion { .. }))
    ));
    assert!(matches!(
        Event::from_stored(&bad("MemberJoined", 1, json!({"channel_id": CH.0}))),
        Err(DecodeError::Shape { .. })
    ));
}
