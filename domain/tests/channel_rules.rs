//! Membership rules of `Channel::decide` (create, join, invite, leave, kick, ban,
//! roles, archive, mute) checked given/when/then, with the folded state after.

mod common;

use common::*;
use domain::*;

fn role_of(channel: &Channel, user: UserId) -> Option<Role> {
    channel.members.get(&user).map(|m| m.role)
}

fn owners(channel: &Channel) -> Vec<UserId> {
    channel
        .members
        .iter()
        .filter(|(_, m)| m.role == Role::Owner)
        .map(|(u, _)| *u)
        .collect()
}

fn create(name: &str, kind: ChannelKind, max_members: Option<u32>) -> ChannelCommand {
    ChannelCommand::Create {
        channel_id: CH,
        name: name.into(),
        kind,
        max_members,
    }
}

// ------------------------------------------------------------------ create

#[test]
fn create_emits_channel_created_with_trimmed_name() {
    given([])
        .when(OWNER, create("  general  ", ChannelKind::Private, Some(10)))
        .then([Event::ChannelCreated(ChannelCreated {
            channel_id: CH,
            name: "general".into(),
            kind: ChannelKind::Private,
            max_members: Some(10),
            owner_id: OWNER,
        })]);
}

#[test]
fn created_channel_has_its_creator_as_sole_owner() {
    let channel = given([])
        .when(OWNER, create("general", ChannelKind::Public, None))
        .then([created(ChannelKind::Public, None)]);
    assert_eq!(channel.id, CH);
    assert_eq!(channel.name, "general");
    assert_eq!(channel.members.len(), 1);
    assert_eq!(
        channel.members[&OWNER],
        Member {
            role: Role::Owner,
            muted: false,
            read_seq: 0
        }
    );
    assert!(channel.banned.is_empty());
    assert!(!channel.archived);
    assert_eq!(channel.last_seq, 0);
}

#[test]
fn create_refuses_empty_or_blank_name() {
    given([])
        .when(OWNER, create("", ChannelKind::Public, None))
        .then_invalid("name");
    given([])
        .when(OWNER, create(" \t\n ", ChannelKind::Public, None))
        .then_invalid("name");
}

#[test]
fn create_accepts_100_chars_and_refuses_101_counting_chars_not_bytes() {
    let hundred = "한".repeat(100); // 300 bytes, 100 chars
    let result = given([])
        .when(OWNER, create(&hundred, ChannelKind::Public, None))
        .result;
    assert!(
        matches!(&result, Ok(events) if events.len() == 1),
        "{result:?}"
    );
    given([])
        .when(OWNER, create(&"é".repeat(101), ChannelKind::Public, None))
        .then_invalid("name");
    given([])
        .when(OWNER, create(&"a".repeat(101), ChannelKind::Public, None))
        .then_invalid("name");
}

#[test]
fn create_refuses_max_members_zero_or_over_the_limit() {
    given([])
        .when(OWNER, create("g", ChannelKind::Public, Some(0)))
        .then_invalid("max_members");
    given([])
        .when(OWNER, create("g", ChannelKind::Public, Some(100_001)))
        .then_invalid("max_members");
    given([])
        .when(OWNER, create("g", ChannelKind::Public, Some(u32::MAX)))
        .then_invalid("max_members");
}

#[test]
fn create_accepts_max_members_at_the_bounds() {
    for max in [1, 100_000] {
        let channel = given([])
            .when(OWNER, create("g", ChannelKind::Public, Some(max)))
            .then([Event::ChannelCreated(ChannelCreated {
                channel_id: CH,
                name: "g".into(),
                kind: ChannelKind::Public,
                max_members: Some(max),
                owner_id: OWNER,
            })]);
        assert_eq!(channel.max_members, Some(max));
    }
}

#[test]
fn create_refuses_when_the_channel_already_exists() {
    given([created(ChannelKind::Public, None)])
        .when(ALICE, create("again", ChannelKind::Public, None))
        .then_error(DomainError::ChannelAlreadyExists);
}

#[test]
fn commands_on_a_missing_channel_are_channel_not_found() {
    for command in [
        ChannelCommand::Join,
        ChannelCommand::Leave,
        ChannelCommand::Archive,
        ChannelCommand::Invite { user_id: ALICE },
        send(1, "hi"),
        ChannelCommand::MarkRead { seq: 0 },
    ] {
        given([])
            .when(OWNER, command)
            .then_error(DomainError::ChannelNotFound);
    }
}

// ------------------------------------------------------------------ join

#[test]
fn join_public_channel_adds_a_plain_member() {
    let channel = given(public_channel())
        .when(CAROL, ChannelCommand::Join)
        .then([joined(CAROL)]);
    assert_eq!(
        channel.members[&CAROL],
        Member {
            role: Role::Member,
            muted: false,
            read_seq: 0
        }
    );
}

#[test]
fn join_private_channel_is_refused() {
    given(private_channel())
        .when(CAROL, ChannelCommand::Join)
        .then_error(DomainError::PrivateChannel);
}

#[test]
fn join_when_banned_is_refused() {
    given(public_channel_and([banned(CAROL, OWNER)]))
        .when(CAROL, ChannelCommand::Join)
        .then_error(DomainError::Banned);
    // The ban is reported even where the channel is private.
    let mut events = private_channel();
    events.push(banned(CAROL, OWNER));
    given(events)
        .when(CAROL, ChannelCommand::Join)
        .then_error(DomainError::Banned);
}

#[test]
fn join_archived_channel_is_refused() {
    given(public_channel_and([archived(OWNER)]))
        .when(CAROL, ChannelCommand::Join)
        .then_error(DomainError::ChannelArchived);
}

#[test]
fn join_full_channel_is_refused() {
    given([created(ChannelKind::Public, Some(2)), joined(ALICE)])
        .when(BOB, ChannelCommand::Join)
        .then_error(DomainError::ChannelFull);
}

#[test]
fn join_below_the_limit_is_accepted() {
    let channel = given([created(ChannelKind::Public, Some(3)), joined(ALICE)])
        .when(BOB, ChannelCommand::Join)
        .then([joined(BOB)]);
    assert_eq!(channel.members.len(), 3);
}

#[test]
fn join_when_already_a_member_changes_nothing() {
    given(public_channel())
        .when(ALICE, ChannelCommand::Join)
        .then_nothing();
    given(public_channel())
        .when(OWNER, ChannelCommand::Join)
        .then_nothing();
}

// ------------------------------------------------------------------ invite

#[test]
fn owner_invites_into_private_channel() {
    let channel = given(private_channel())
        .when(OWNER, ChannelCommand::Invite { user_id: CAROL })
        .then([invited(CAROL, OWNER)]);
    assert_eq!(role_of(&channel, CAROL), Some(Role::Member));
}

#[test]
fn admin_invites() {
    given(private_channel())
        .when(ADMIN, ChannelCommand::Invite { user_id: CAROL })
        .then([invited(CAROL, ADMIN)]);
}

#[test]
fn member_cannot_invite() {
    given(private_channel())
        .when(ALICE, ChannelCommand::Invite { user_id: CAROL })
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
}

#[test]
fn non_member_cannot_invite() {
    given(private_channel())
        .when(MALLORY, ChannelCommand::Invite { user_id: CAROL })
        .then_error(DomainError::NotAMember);
}

#[test]
fn inviting_a_banned_user_is_refused() {
    let mut events = private_channel();
    events.push(banned(CAROL, OWNER));
    given(events)
        .when(OWNER, ChannelCommand::Invite { user_id: CAROL })
        .then_error(DomainError::TargetBanned);
}

#[test]
fn inviting_a_member_changes_nothing() {
    given(private_channel())
        .when(OWNER, ChannelCommand::Invite { user_id: ALICE })
        .then_nothing();
}

#[test]
fn inviting_into_a_full_or_archived_channel_is_refused() {
    given([created(ChannelKind::Private, Some(1))])
        .when(OWNER, ChannelCommand::Invite { user_id: ALICE })
        .then_error(DomainError::ChannelFull);
    let mut events = private_channel();
    events.push(archived(OWNER));
    given(events)
        .when(OWNER, ChannelCommand::Invite { user_id: CAROL })
        .then_error(DomainError::ChannelArchived);
}

// ------------------------------------------------------------------ leave

#[test]
fn member_leaves() {
    let channel = given(public_channel())
        .when(ALICE, ChannelCommand::Leave)
        .then([left(ALICE)]);
    assert!(!channel.members.contains_key(&ALICE));
    assert!(!channel.banned.contains(&ALICE), "leaving is not a ban");
}

#[test]
fn owner_with_other_members_cannot_leave() {
    given(public_channel())
        .when(OWNER, ChannelCommand::Leave)
        .then_error(DomainError::OwnerCannotLeave);
}

#[test]
fn owner_alone_cannot_leave_either() {
    // Otherwise the next joiner would find a channel nobody owns.
    given([created(ChannelKind::Public, None)])
        .when(OWNER, ChannelCommand::Leave)
        .then_error(DomainError::OwnerCannotLeave);
}

#[test]
fn non_member_cannot_leave() {
    given(public_channel())
        .when(CAROL, ChannelCommand::Leave)
        .then_error(DomainError::NotAMember);
}

#[test]
fn a_left_member_can_rejoin_a_public_channel() {
    given(public_channel_and([left(ALICE)]))
        .when(ALICE, ChannelCommand::Join)
        .then([joined(ALICE)]);
}

// ------------------------------------------------------------------ kick

#[test]
fn admin_kicks_member() {
    let channel = given(public_channel())
        .when(ADMIN, ChannelCommand::Kick { user_id: ALICE })
        .then([kicked(ALICE, ADMIN)]);
    assert!(!channel.members.contains_key(&ALICE));
    assert!(!channel.banned.contains(&ALICE), "a kick is not a ban");
}

#[test]
fn a_kicked_member_may_rejoin() {
    given(public_channel_and([kicked(ALICE, ADMIN)]))
        .when(ALICE, ChannelCommand::Join)
        .then([joined(ALICE)]);
}

#[test]
fn owner_kicks_admin() {
    given(public_channel())
        .when(OWNER, ChannelCommand::Kick { user_id: ADMIN })
        .then([kicked(ADMIN, OWNER)]);
}

#[test]
fn admin_cannot_kick_admin_or_owner() {
    let events = public_channel_and([role_changed(ALICE, Role::Admin, OWNER)]);
    given(events.clone())
        .when(ADMIN, ChannelCommand::Kick { user_id: ALICE })
        .then_error(DomainError::OutrankedTarget);
    given(events)
        .when(ADMIN, ChannelCommand::Kick { user_id: OWNER })
        .then_error(DomainError::OutrankedTarget);
}

#[test]
fn member_cannot_kick() {
    given(public_channel())
        .when(ALICE, ChannelCommand::Kick { user_id: BOB })
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
}

#[test]
fn kicking_a_non_member_is_refused() {
    given(public_channel())
        .when(ADMIN, ChannelCommand::Kick { user_id: CAROL })
        .then_error(DomainError::TargetNotAMember);
}

#[test]
fn kicking_oneself_is_leaving() {
    given(public_channel())
        .when(ALICE, ChannelCommand::Kick { user_id: ALICE })
        .then([left(ALICE)]);
    given(public_channel())
        .when(OWNER, ChannelCommand::Kick { user_id: OWNER })
        .then_error(DomainError::OwnerCannotLeave);
}

// ------------------------------------------------------------------ ban / unban

#[test]
fn ban_removes_membership_and_records_the_ban() {
    let channel = given(public_channel())
        .when(ADMIN, ChannelCommand::Ban { user_id: ALICE })
        .then([banned(ALICE, ADMIN)]);
    assert!(!channel.members.contains_key(&ALICE));
    assert!(channel.banned.contains(&ALICE));
}

#[test]
fn banned_user_cannot_rejoin_or_act() {
    let events = public_channel_and([banned(ALICE, ADMIN)]);
    given(events.clone())
        .when(ALICE, ChannelCommand::Join)
        .then_error(DomainError::Banned);
    given(events.clone())
        .when(ALICE, send(1, "hi"))
        .then_error(DomainError::Banned);
    given(events.clone())
        .when(ALICE, ChannelCommand::Leave)
        .then_error(DomainError::Banned);
    given(events)
        .when(ALICE, ChannelCommand::SetMuted { muted: true })
        .then_error(DomainError::Banned);
}

#[test]
fn unban_then_the_user_can_rejoin() {
    let channel = given(public_channel_and([banned(ALICE, ADMIN)]))
        .when(ADMIN, ChannelCommand::Unban { user_id: ALICE })
        .then([unbanned(ALICE, ADMIN)]);
    assert!(!channel.banned.contains(&ALICE));
    assert!(
        !channel.members.contains_key(&ALICE),
        "unbanning does not re-add the user"
    );
    given(public_channel_and([
        banned(ALICE, ADMIN),
        unbanned(ALICE, ADMIN),
    ]))
    .when(ALICE, ChannelCommand::Join)
    .then([joined(ALICE)]);
}

#[test]
fn banning_a_non_member_bars_them_in_advance() {
    given(public_channel())
        .when(OWNER, ChannelCommand::Ban { user_id: CAROL })
        .then([banned(CAROL, OWNER)]);
    given(public_channel_and([banned(CAROL, OWNER)]))
        .when(CAROL, ChannelCommand::Join)
        .then_error(DomainError::Banned);
}

#[test]
fn ban_and_unban_are_idempotent() {
    given(public_channel_and([banned(CAROL, OWNER)]))
        .when(ADMIN, ChannelCommand::Ban { user_id: CAROL })
        .then_nothing();
    given(public_channel())
        .when(ADMIN, ChannelCommand::Unban { user_id: CAROL })
        .then_nothing();
}

#[test]
fn ban_refuses_self_and_equal_or_higher_roles() {
    given(public_channel())
        .when(ADMIN, ChannelCommand::Ban { user_id: ADMIN })
        .then_error(DomainError::OutrankedTarget);
    given(public_channel())
        .when(ADMIN, ChannelCommand::Ban { user_id: OWNER })
        .then_error(DomainError::OutrankedTarget);
    given(public_channel_and([role_changed(
        ALICE,
        Role::Admin,
        OWNER,
    )]))
    .when(ADMIN, ChannelCommand::Ban { user_id: ALICE })
    .then_error(DomainError::OutrankedTarget);
    given(public_channel())
        .when(OWNER, ChannelCommand::Ban { user_id: OWNER })
        .then_error(DomainError::OutrankedTarget);
}

#[test]
fn members_cannot_ban_or_unban() {
    given(public_channel())
        .when(ALICE, ChannelCommand::Ban { user_id: BOB })
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
    given(public_channel_and([banned(CAROL, OWNER)]))
        .when(ALICE, ChannelCommand::Unban { user_id: CAROL })
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
}

// ------------------------------------------------------------------ change role

#[test]
fn owner_transfer_emits_two_role_changes_and_the_old_owner_becomes_admin() {
    let channel = given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: ALICE,
                role: Role::Owner,
            },
        )
        .then([
            role_changed(ALICE, Role::Owner, OWNER),
            role_changed(OWNER, Role::Admin, OWNER),
        ]);
    assert_eq!(role_of(&channel, ALICE), Some(Role::Owner));
    assert_eq!(role_of(&channel, OWNER), Some(Role::Admin));
    assert_eq!(owners(&channel), vec![ALICE]);
}

#[test]
fn after_a_transfer_the_old_owner_may_leave_and_the_new_one_may_not() {
    let events = public_channel_and([
        role_changed(ALICE, Role::Owner, OWNER),
        role_changed(OWNER, Role::Admin, OWNER),
    ]);
    given(events.clone())
        .when(OWNER, ChannelCommand::Leave)
        .then([left(OWNER)]);
    given(events)
        .when(ALICE, ChannelCommand::Leave)
        .then_error(DomainError::OwnerCannotLeave);
}

#[test]
fn admin_cannot_make_someone_owner() {
    given(public_channel())
        .when(
            ADMIN,
            ChannelCommand::ChangeRole {
                user_id: ALICE,
                role: Role::Owner,
            },
        )
        .then_error(DomainError::InsufficientRole { required: "owner" });
    given(public_channel())
        .when(
            ADMIN,
            ChannelCommand::ChangeRole {
                user_id: ADMIN,
                role: Role::Owner,
            },
        )
        .then_error(DomainError::InsufficientRole { required: "owner" });
}

#[test]
fn owner_and_admin_promote_a_member_to_admin() {
    let channel = given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: ALICE,
                role: Role::Admin,
            },
        )
        .then([role_changed(ALICE, Role::Admin, OWNER)]);
    assert_eq!(role_of(&channel, ALICE), Some(Role::Admin));
    given(public_channel())
        .when(
            ADMIN,
            ChannelCommand::ChangeRole {
                user_id: BOB,
                role: Role::Admin,
            },
        )
        .then([role_changed(BOB, Role::Admin, ADMIN)]);
}

#[test]
fn owner_demotes_an_admin() {
    let channel = given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: ADMIN,
                role: Role::Member,
            },
        )
        .then([role_changed(ADMIN, Role::Member, OWNER)]);
    assert_eq!(role_of(&channel, ADMIN), Some(Role::Member));
}

#[test]
fn admin_cannot_change_an_equal_or_higher_role() {
    given(public_channel_and([role_changed(
        ALICE,
        Role::Admin,
        OWNER,
    )]))
    .when(
        ADMIN,
        ChannelCommand::ChangeRole {
            user_id: ALICE,
            role: Role::Member,
        },
    )
    .then_error(DomainError::OutrankedTarget);
    given(public_channel())
        .when(
            ADMIN,
            ChannelCommand::ChangeRole {
                user_id: OWNER,
                role: Role::Member,
            },
        )
        .then_error(DomainError::OutrankedTarget);
}

#[test]
fn admin_may_step_down_but_owner_may_not() {
    given(public_channel())
        .when(
            ADMIN,
            ChannelCommand::ChangeRole {
                user_id: ADMIN,
                role: Role::Member,
            },
        )
        .then([role_changed(ADMIN, Role::Member, ADMIN)]);
    given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: OWNER,
                role: Role::Admin,
            },
        )
        .then_error(DomainError::OwnerCannotLeave);
}

#[test]
fn member_cannot_change_roles() {
    given(public_channel())
        .when(
            ALICE,
            ChannelCommand::ChangeRole {
                user_id: BOB,
                role: Role::Admin,
            },
        )
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
    given(public_channel())
        .when(
            ALICE,
            ChannelCommand::ChangeRole {
                user_id: ALICE,
                role: Role::Admin,
            },
        )
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
}

#[test]
fn change_role_of_a_non_member_is_refused() {
    given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: CAROL,
                role: Role::Admin,
            },
        )
        .then_error(DomainError::TargetNotAMember);
    given(public_channel())
        .when(
            CAROL,
            ChannelCommand::ChangeRole {
                user_id: ALICE,
                role: Role::Admin,
            },
        )
        .then_error(DomainError::NotAMember);
}

#[test]
fn change_to_the_current_role_changes_nothing() {
    given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: ADMIN,
                role: Role::Admin,
            },
        )
        .then_nothing();
    given(public_channel())
        .when(
            OWNER,
            ChannelCommand::ChangeRole {
                user_id: OWNER,
                role: Role::Owner,
            },
        )
        .then_nothing();
}

// ------------------------------------------------------------------ archive

#[test]
fn admin_archives_and_archiving_twice_changes_nothing() {
    let channel = given(public_channel())
        .when(ADMIN, ChannelCommand::Archive)
        .then([archived(ADMIN)]);
    assert!(channel.archived);
    assert_eq!(channel.members.len(), 4, "archiving keeps the members");
    given(public_channel_and([archived(ADMIN)]))
        .when(OWNER, ChannelCommand::Archive)
        .then_nothing();
}

#[test]
fn member_cannot_archive() {
    given(public_channel())
        .when(ALICE, ChannelCommand::Archive)
        .then_error(DomainError::InsufficientRole {
            required: "owner or admin",
        });
}

#[test]
fn archive_then_send_is_refused() {
    given(public_channel_and([archived(OWNER)]))
        .when(ALICE, send(1, "hello?"))
        .then_error(DomainError::ChannelArchived);
    given(public_channel_and([archived(OWNER)]))
        .when(OWNER, send(1, "hello?"))
        .then_error(DomainError::ChannelArchived);
}

// ------------------------------------------------------------------ mute

#[test]
fn mute_and_unmute_toggle_and_are_idempotent() {
    let channel = given(public_channel())
        .when(ALICE, ChannelCommand::SetMuted { muted: true })
        .then([muted(ALICE)]);
    assert!(channel.members[&ALICE].muted);
    assert!(!channel.members[&BOB].muted, "muting is per member");

    given(public_channel_and([muted(ALICE)]))
        .when(ALICE, ChannelCommand::SetMuted { muted: true })
        .then_nothing();

    let channel = given(public_channel_and([muted(ALICE)]))
        .when(ALICE, ChannelCommand::SetMuted { muted: false })
        .then([unmuted(ALICE)]);
    assert!(!channel.members[&ALICE].muted);

    given(public_channel())
        .when(ALICE, ChannelCommand::SetMuted { muted: false })
        .then_nothing();
    given(public_channel_and([muted(ALICE), unmuted(ALICE)]))
        .when(ALICE, ChannelCommand::SetMuted { muted: false })
        .then_nothing();
}

#[test]
fn non_member_cannot_mute() {
    given(public_channel())
        .when(CAROL, ChannelCommand::SetMuted { muted: true })
        .then_error(DomainError::NotAMember);
}

// ------------------------------------------------------------------ evolve

#[test]
fn evolve_ignores_events_before_the_channel_exists_and_user_events() {
    assert_eq!(Channel::evolve(None, &joined(ALICE)), None);
    let channel = fold_channel(&public_channel());
    let user_event = Event::UserRegistered(UserRegistered {
        user_id: CAROL,
        username: "carol".into(),
        display_name: "Carol".into(),
    });
    assert_eq!(Channel::evolve(channel.clone(), &user_event), channel);
}

#[test]
fn rejoining_resets_role_and_preferences() {
    let events = public_channel_and([
        role_changed(ALICE, Role::Admin, OWNER),
        muted(ALICE),
        sent(1, 1, BOB, "hi"),
        read_up_to(ALICE, 1),
        left(ALICE),
        joined(ALICE),
    ]);
    let channel = fold_channel(&events).expect("channel");
    assert_eq!(
        channel.members[&ALICE],
        Member {
            role: Role::Member,
            muted: false,
            read_seq: 0
        }
    );
}
