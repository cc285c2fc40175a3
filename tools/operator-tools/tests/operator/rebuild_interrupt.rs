//! A rebuild stopped part-way (by its test hook, or killed by aborting its
//! task while it writes) leaves the live model as it was, and a rerun drops
//! the leftover and succeeds.

use crate::compare::{dump, reference_fold, schemas_like};
use crate::helpers::Pipeline;
use domain::{ChannelCommand, UserId};
use operator_tools::progress::Progress;
use operator_tools::rebuild::{self, RebuildError, RebuildOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_rebuild_leaves_the_live_model_and_a_rerun_succeeds() {
    let p = Pipeline::new().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    let members: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    for m in &members {
        p.channel_command(*m, channel, ChannelCommand::Join).await;
    }
    for n in 0..200 {
        p.send(members[n % 3], channel, &format!("message {n}"))
            .await;
    }
    // The live model, as the projector builds it.
    reference_fold(&p.store(), &p.read.pool, "rm").await;
    let before = dump(&p.read.pool, "rm").await;
    assert_eq!(before["messages"].len(), 200);
    let projection = rebuild::projection("read-model").expect("known");
    let read = p.read.pool.clone();

    // Stopped by the hook after 3 pages: a partial rm_rebuild, rm untouched.
    let options = RebuildOptions {
        page_size: 20,
        stop_after_pages: Some(3),
        ..RebuildOptions::default()
    };
    let stopped =
        rebuild::rebuild(&read, &p.store(), projection, &options, &Progress::hidden()).await;
    assert!(
        matches!(stopped, Err(RebuildError::Stopped(3))),
        "{stopped:?}"
    );
    assert_eq!(schemas_like(&read, "rm_rebuild").await, vec!["rm_rebuild"]);
    let partial: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_rebuild.messages")
        .fetch_one(&read)
        .await
        .expect("count");
    assert!(
        partial > 0 && partial < 200,
        "a partial build: {partial} messages"
    );
    assert_eq!(
        dump(&read, "rm").await,
        before,
        "the live model is untouched"
    );

    // Killed while writing: abort the task between two pages.
    let (task_read, task_log) = (read.clone(), p.store());
    let task = tokio::spawn(async move {
        let options = RebuildOptions {
            page_size: 2,
            ..RebuildOptions::default()
        };
        rebuild::rebuild(
            &task_read,
            &task_log,
            projection,
            &options,
            &Progress::hidden(),
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let written: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM rm_rebuild.messages")
            .fetch_one(&read)
            .await
            .ok();
        if written.is_some_and(|n| n >= 20) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!task.is_finished(), "aborted mid-way, not after the switch");
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    assert_eq!(
        dump(&read, "rm").await,
        before,
        "the live model is untouched"
    );

    // A rerun drops the leftover and switches.
    let report = rebuild::rebuild(
        &read,
        &p.store(),
        projection,
        &RebuildOptions::default(),
        &Progress::hidden(),
    )
    .await
    .expect("the rerun succeeds");
    assert_eq!(
        report.events, 204,
        "every event: 1 creation, 3 joins, 200 messages"
    );
    assert_eq!(
        dump(&read, "rm").await,
        before,
        "the rebuilt model equals the live one"
    );
    assert!(schemas_like(&read, "rm_rebuild").await.is_empty());
    assert!(schemas_like(&read, "rm_old").await.is_empty());
}
