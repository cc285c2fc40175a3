//! `--stream`, `--category`, `--type` and `--until` (a cursor or a time)
//! select exactly what the same condition selects in SQL, in commit order.

use crate::helpers::{Log, cursors, export_lines};
use analyst_tools::{Category, EventsArgs};
use domain::{ChannelCommand, channel_stream};

#[tokio::test]
async fn filters_select_what_sql_selects() {
    let log = Log::new().await;
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
        let pool = log.pool().clone();
        async move { cursors(&export_lines(&pool, &args).await) }
    };
    let general_stream = channel_stream(general);

    let stream = got(EventsArgs {
        stream: Some(general_stream.clone()),
        ..EventsArgs::default()
    })
    .await;
    let expected = log
        .sql_cursors(&format!("WHERE stream_id = '{general_stream}'"))
        .await;
    assert_eq!(stream, expected);
    assert_eq!(stream.len(), 9, "create, 2 joins, 5 messages, kick");

    let channels = got(EventsArgs {
        category: Some(Category::Channel),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        channels,
        log.sql_cursors("WHERE stream_id LIKE 'channel-%'").await
    );
    let users = got(EventsArgs {
        category: Some(Category::User),
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        users,
        log.sql_cursors("WHERE stream_id LIKE 'user-%'").await
    );
    assert_eq!(users.len(), 3);

    let types = got(EventsArgs {
        types: vec!["MemberJoined".into(), "MemberKicked".into()],
        ..EventsArgs::default()
    })
    .await;
    assert_eq!(
        types,
        log.sql_cursors("WHERE event_type IN ('MemberJoined', 'MemberKicked')")
            .await
    );
    assert_eq!(types.len(), 3);

    let all = log.sql_cursors("").await;
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
    let expected = log
        .sql_cursors(&format!(
            "WHERE recorded_at <= '{}'",
            before_cat.to_rfc3339()
        ))
        .await;
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
        log.sql_cursors(&format!(
            "WHERE event_type = 'MessageSent' AND recorded_at <= '{}'",
            before_cat.to_rfc3339()
        ))
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
