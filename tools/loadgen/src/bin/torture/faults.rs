//! The faults, each injected and then undone (restart, CONT, start_app, …).
//! Every one touches only the run's own services and processes.

use crate::procs::Proc;
use crate::services::{PgCluster, RabbitNode, RedisServer};
use anyhow::Context;
use rand::Rng;
use rand::rngs::StdRng;
use std::time::Duration;

/// What a run can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillInstance,
    KillProjector,
    StopProjector,
    RabbitStopApp,
    RabbitCloseConnections,
    RabbitMemoryAlarm,
    PgStopImmediate,
    RedisFlushAll,
    RedisDebugSleep,
}

/// Every fault, each once per round.
pub const ALL: [Fault; 9] = [
    Fault::KillInstance,
    Fault::KillProjector,
    Fault::StopProjector,
    Fault::RabbitStopApp,
    Fault::RabbitCloseConnections,
    Fault::RabbitMemoryAlarm,
    Fault::PgStopImmediate,
    Fault::RedisFlushAll,
    Fault::RedisDebugSleep,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillInstance => "kill -9 instance",
            Fault::KillProjector => "kill -9 projector",
            Fault::StopProjector => "STOP/CONT projector 5 s",
            Fault::RabbitStopApp => "rabbitmq stop_app/start_app",
            Fault::RabbitCloseConnections => "rabbitmq close_all_connections",
            Fault::RabbitMemoryAlarm => "rabbitmq memory alarm 5 s",
            Fault::PgStopImmediate => "postgres stop -m immediate",
            Fault::RedisFlushAll => "redis FLUSHALL",
            Fault::RedisDebugSleep => "redis DEBUG SLEEP 2",
        }
    }
}

/// What the faults act on.
pub struct Targets<'a> {
    pub instances: &'a mut [Proc],
    pub projector: &'a mut Proc,
    pub pg: &'a PgCluster,
    pub rabbit: &'a RabbitNode,
    pub redis: &'a RedisServer,
}

/// Injects `fault` and undoes it; returns a word on what it hit.
pub async fn inject(fault: Fault, t: Targets<'_>, rng: &mut StdRng) -> anyhow::Result<String> {
    let pause = tokio::time::sleep;
    Ok(match fault {
        Fault::KillInstance => {
            let i = rng.random_range(0..t.instances.len());
            let instance = &mut t.instances[i];
            instance.kill9();
            pause(Duration::from_secs(1)).await;
            instance.start()?;
            instance.name.clone()
        }
        Fault::KillProjector => {
            t.projector.kill9();
            pause(Duration::from_secs(1)).await;
            t.projector.start()?;
            "projector".into()
        }
        Fault::StopProjector => {
            t.projector.signal("STOP").await?;
            pause(Duration::from_secs(5)).await;
            t.projector.signal("CONT").await?;
            "projector".into()
        }
        Fault::RabbitStopApp => {
            t.rabbit.ctl(&["stop_app"]).await?;
            pause(Duration::from_secs(3)).await;
            t.rabbit.ctl(&["start_app"]).await?;
            t.rabbit.await_startup().await?;
            t.rabbit.node.clone()
        }
        Fault::RabbitCloseConnections => {
            t.rabbit
                .ctl(&["close_all_connections", "torture: close_all_connections"])
                .await?;
            t.rabbit.node.clone()
        }
        Fault::RabbitMemoryAlarm => {
            // A tiny watermark raises the alarm: publishers are blocked.
            t.rabbit
                .ctl(&["set_vm_memory_high_watermark", "0.0000001"])
                .await?;
            pause(Duration::from_secs(5)).await;
            t.rabbit
                .ctl(&["set_vm_memory_high_watermark", "0.4"])
                .await?;
            t.rabbit.node.clone()
        }
        Fault::PgStopImmediate => {
            t.pg.ctl(&["stop", "-m", "immediate"]).await?;
            pause(Duration::from_secs(3)).await;
            t.pg.ctl(&["start"]).await.context("restart PostgreSQL")?;
            t.pg.wait_ready().await?;
            format!("{}/{}", t.pg.version, t.pg.name)
        }
        Fault::RedisFlushAll => {
            t.redis.cli(&["FLUSHALL"]).await?;
            format!("redis :{}", t.redis.port)
        }
        Fault::RedisDebugSleep => {
            t.redis.cli(&["DEBUG", "SLEEP", "2"]).await?;
            format!("redis :{}", t.redis.port)
        }
    })
}
