//! `--stream`, `--category`, `--type` and `--until` (a cursor or a time)
//! select exactly the events of the log that satisfy the same condition, in
//! commit order, on both backends.

use crate::helpers::{Log, cursors, export_lines};
use analyst_tools::{Category, EventsArgs};
use domain::{ChannelCommand, channel_stream};

both!(filters_select_what_the_condition_selects);

async fn filters_select_what_the_condition_selects(log: Log) {
    let ann = log.register("ann").await;
    let bob = log.register("bob").await;
    let general = log.create_channel(ann, "general").await;
    let random = log.create_channel(bob, "random").await;
    log.command(bob, general, ChannelCommand::Join).await;
    for n in 0..4 {
        log.send(ann, general, &format!("g{n}")).await;
        log.send(bob, random, &format!("r{n}")).await;
    }
    let before_cat = log.now().await;
    let cat = log.register("cat").await;
    log.command(cat, general, ChannelCommand::Join).await;
    log.send(cat, general, "late").await;
    log.command(ann, general, ChannelCommand::Kick { user_id: cat })
        .await;

    let got = |args: EventsArgs| {
        let source = log.source();
        async move { cursors(&export_lines(&source, &args).await) }
    };
    let general_stream = channel_stream(general);

    let stream = got(EventsArgs {
        stream: Some(general_stream.clone()),
        ..EventsArgs::default()
    })
    .await;
    let expected = log.cursors_where(|e| e.stream_id == general_stream).await;
    assert_eq!(stream, expected);
    assert_eq!(stream.len(), 9, "create, 2 joins, 5 messages, kick");

    let channels = got(EventsArgs {
        category: Some(Category::Channel),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        channels,
        log.cursors_where(|e| e.stream_id.starts_with("channel-"))
            .await
    );
    let users = got(EventsArgs {
        category: Some(Category::User),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        users,
        log.cursors_where(|e| e.stream_id.starts_with("user-"))
            .await
    );
    assert_eq!(users.len(), 3);

    let types = got(EventsArgs {
        types: vec!["MemberJoined".into(), "MemberKicked".into()],
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        types,
        log.cursors_where(|e| ["MemberJoined", "MemberKicked"].contains(&e.event_type.as_str()))
            .await
    );
    assert_eq!(types.len(), 3);

    let all = log.cursors_where(|_| true).await;
    let middle = all[all.len() / 2].clone();
    let until_cursor = got(EventsArgs {
        until: Some(middle.clone()),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        until_cursor,
        all[..=all.len() / 2].to_vec(),
        "inclusive of {middle}"
    );

    let until_time = got(EventsArgs {
        until: Some(before_cat.to_rfc3339()),
        ..EventsArgs::default()
    })
    .await;
    let expected = log.cursors_where(|e| e.recorded_at <= before_cat).await;
    assert_eq!(until_time, expected);
    assert_eq!(until_time.len(), all.len() - 4, "cat's 4 events come after");

    let combined = got(EventsArgs {
        category: Some(Category::Channel),
        types: vec!["MessageSent".into()],
        until: Some(before_cat.to_rfc3339()),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        combined,
        log.cursors_where(|e| e.event_type == "MessageSent" && e.recorded_at <= before_cat)
            .await
    );
    assert_eq!(combined.len(), 8);

    let before_everything = got(EventsArgs {
        until: Some("2000-01-01T00:00:00Z".into()),
        ..EventsArgs::default()
    })
    .await;
    assert!(before_everything.is_empty());
}
