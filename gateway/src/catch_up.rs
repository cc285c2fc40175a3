//! Brings one subscription from a seq to live: pages of history from the read
//! model, sent at the client's pace, then the frames that waited, then live.
//! Bounded: at most the recovery window is replayed; further behind (a long
//! broker outage), or when the read model lacks a seq that was announced (a
//! lagging replica, a dead-lettered event), the client is told to re-fetch
//! with an unsolicited `subscribed {recovered: false}` and continues live:
//! never a silent hole.

use crate::frames::{ServerFrame, close};
use crate::hub::{Hub, Settle, Subscription};
use std::sync::Arc;
use std::time::Duration;

/// History rows read per query.
pub(crate) const PAGE: i64 = 500;
/// Empty reads (20 ms apart) before a missing seq counts as lost.
const STALL_LIMIT: u32 = 50;

/// Runs until the subscription is live or gone.
pub(crate) async fn run(hub: &Arc<Hub>, sub: &Arc<Subscription>, mut from: u64) {
    let mut stalled = 0;
    loop {
        if !sub.is_active() {
            return;
        }
        match sub.settle(from) {
            None => return,
            Some(Settle::Send(pending)) => {
                for live in pending {
                    if !sub.is_active() || !sub.connection.send_paced(live.frame).await {
                        return;
                    }
                }
            }
            Some(Settle::ReadMore(target)) => {
                if target.saturating_sub(from) > hub.recovery_limit {
                    from = resync(hub, sub, target).await;
                    continue;
                }
                let page = match hub.history.messages_after(sub.channel_id, from, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "history read failed while catching up; closing the socket");
                        sub.connection.end(close::SERVER_ERROR);
                        return;
                    }
                };
                // Seqs are gap-free: anything but `from + 1` next is a hole
                // the read model has (a lagging replica, a dead letter).
                let mut progressed = false;
                for live in page {
                    if live.seq.is_some_and(|seq| seq != from + 1) {
                        break;
                    }
                    if !sub.is_active() || !sub.connection.send_paced(live.frame).await {
                        return;
                    }
                    if let Some(seq) = live.seq {
                        from = seq;
                    }
                    progressed = true;
                }
                if progressed {
                    stalled = 0;
                    continue;
                }
                stalled += 1;
                if stalled > STALL_LIMIT {
                    tracing::warn!(channel_id = %sub.channel_id, after = from, "the read model lacks a seq; telling the client to re-fetch");
                    from = resync(hub, sub, target).await;
                    stalled = 0;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Skips to `target` and says so: `subscribed {recovered: false}`.
async fn resync(hub: &Arc<Hub>, sub: &Arc<Subscription>, target: u64) -> u64 {
    metrics::counter!("ws_resyncs_total").increment(1);
    let online = hub.online(sub.channel_id).await;
    let frame = ServerFrame::Subscribed {
        id: None,
        channel_id: sub.channel_id,
        last_seq: target,
        recovered: false,
        online_users: online.users,
        online_count: online.count,
    };
    sub.connection.send_paced(frame.to_text().into()).await;
    target
}
