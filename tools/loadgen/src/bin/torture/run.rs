//! One run: set up, load with faults in turn, wait for quiet, judge.

use crate::api::Api;
use crate::faults::{self, Fault, Targets};
use crate::load::{self, World};
use crate::procs::Proc;
use crate::services::{self, PgCluster, Ports, RabbitNode, RedisServer};
use crate::sockets::Subscriber;
use crate::{Args, observe};
use anyhow::Context;
use loadgen::torture::report::Window;
use loadgen::torture::{Violation, ViolationKind};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The steady load before the first fault.
const WARMUP: Duration = Duration::from_secs(10);
/// A fault's window at least lasts this long (its recovery included).
const MIN_SLOT: Duration = Duration::from_secs(12);
/// The longest a fault may take to recover before it counts as a violation.
const RECOVERY_BOUND: Duration = Duration::from_secs(120);

/// The run's directory, removed at the end.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find my own executable")?;
    Ok(me.with_file_name(name))
}

/// The faults in seeded order: each once per round, as many rounds as fit.
pub fn schedule(seconds: u64, rng: &mut StdRng) -> Vec<Fault> {
    let slot_round = MIN_SLOT.as_secs().max(20) * faults::ALL.len() as u64;
    let rounds = (seconds.saturating_sub(WARMUP.as_secs()) / slot_round).max(1);
    let mut order = Vec::new();
    for _ in 0..rounds {
        let mut round = faults::ALL.to_vec();
        round.shuffle(rng);
        order.extend(round);
    }
    order
}

/// The system under test: the run's services and processes. Field order is
/// drop order: the processes go before the services they use.
pub struct System {
    pub instances: Vec<Proc>,
    pub projector: Proc,
    pub rabbit: RabbitNode,
    pub redis: RedisServer,
    pub pg: PgCluster,
    pub chat: PathBuf,
    pub logs: Vec<PathBuf>,
}

async fn start_system(args: &Args, dir: &Path) -> anyhow::Result<System> {
    let chat = args.chat.clone().map_or_else(|| beside_me("chat"), Ok)?;
    let projector_bin = args
        .projector
        .clone()
        .map_or_else(|| beside_me("projector"), Ok)?;
    for bin in [&chat, &projector_bin] {
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: cargo build -p chat -p projector",
            bin.display()
        );
    }
    let mut ports = Ports::default();
    eprintln!("torture: starting a private PostgreSQL cluster, Redis server and RabbitMQ node");
    let pg = PgCluster::start(&mut ports).await?;
    let redis = RedisServer::start(&mut ports, dir).await?;
    let rabbit = RabbitNode::start(&mut ports, dir).await?;
    observe::declare_audit(&rabbit.url()).await?;
    let env: Vec<(String, String)> = [
        ("CHAT_BACKEND", "services".to_owned()),
        ("CHAT_DATABASE_URL", pg.url("chat")),
        ("CHAT_READ_DATABASE_URL", pg.url("chat_read")),
        ("CHAT_AMQP_URL", rabbit.url()),
        ("CHAT_REDIS_URL", redis.url()),
        (
            "CHAT_JWT_SECRET",
            "torture-secret-of-at-least-thirty-two-bytes".to_owned(),
        ),
        // The load is not there to be throttled.
        ("CHAT_SEND_RATE_PER_SEC", "1000".to_owned()),
        ("CHAT_SEND_BURST", "1000".to_owned()),
        ("CHAT_AUTH_ATTEMPTS_PER_MIN", "100000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut instances = Vec::new();
    let mut logs = Vec::new();
    for name in ["instance-a", "instance-b"] {
        let log = dir.join(format!("{name}.log"));
        let addr = format!("127.0.0.1:{}", ports.free()?);
        let mut instance = Proc::new(
            name,
            addr,
            chat.clone(),
            &["up", "--no-projector"],
            env.clone(),
            log.clone(),
            "/ready",
        );
        instance.start()?;
        // One at a time: the first creates and migrates the databases.
        instance.wait_ready(Duration::from_secs(120)).await?;
        instances.push(instance);
        logs.push(log);
    }
    let log = dir.join("projector.log");
    let addr = format!("127.0.0.1:{}", ports.free()?);
    let mut projector = Proc::new(
        "projector",
        addr,
        projector_bin,
        &[],
        env,
        log.clone(),
        "/health",
    );
    projector.start()?;
    projector.wait_ready(Duration::from_secs(60)).await?;
    logs.push(log);
    Ok(System {
        instances,
        projector,
        rabbit,
        redis,
        pg,
        chat,
        logs,
    })
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    eprintln!(
        "torture: seed {seed} (replay with --seed {seed}), {} s of load",
        args.seconds
    );
    services::clean_leftovers();
    let dir =
        RunDir(std::env::temp_dir().join(format!("{}{}", services::PREFIX, std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let mut system = start_system(&args, &dir.0).await?;
    let started = Instant::now();
    let addrs: Vec<String> = system.instances.iter().map(|i| i.addr.clone()).collect();
    let api = Arc::new(Api::new(&addrs, started));
    let world = Arc::new(World::create(&addrs[0], &format!("{seed:x}"), args.senders).await?);

    let (stop_sockets, sockets_stopped) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    let mut socket_tasks = Vec::new();
    for (i, sender) in world.senders.iter().enumerate() {
        let subscriber = Arc::new(Subscriber {
            name: format!("{}@{}", sender.name, system.instances[i % 2].name),
            user_id: sender.id,
            token: sender.token.clone(),
            instance: i % 2,
            addr: addrs[i % 2].clone(),
            channels: world.channels.clone(),
            records: Default::default(),
            last: Default::default(),
            live: Default::default(),
        });
        socket_tasks.push(tokio::spawn(
            subscriber.clone().run(api.clone(), sockets_stopped.clone()),
        ));
        subscribers.push(subscriber);
    }
    let until_live = Instant::now();
    while !subscribers.iter().all(|s| s.is_live()) && until_live.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stop_load = Arc::new(AtomicBool::new(false));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workers = Vec::new();
    for who in 0..world.senders.len() {
        workers.push(tokio::spawn(load::sender(
            api.clone(),
            world.clone(),
            who,
            rng.random(),
            stop_load.clone(),
        )));
    }
    workers.push(tokio::spawn(load::churn(
        api.clone(),
        world.clone(),
        stop_load.clone(),
    )));
    let progress = tokio::spawn(progress(api.clone(), subscribers.clone()));

    let order = schedule(args.seconds, &mut rng);
    let slot =
        Duration::from_secs(args.seconds.saturating_sub(WARMUP.as_secs()) / order.len() as u64)
            .max(MIN_SLOT);
    let mut windows = vec![Window {
        fault: "steady (no fault)".into(),
        recovery_secs: None,
    }];
    let mut violations = Vec::new();
    let load_started = Instant::now();
    for (k, fault) in order.iter().enumerate() {
        let at = WARMUP + slot * k as u32;
        tokio::time::sleep(at.saturating_sub(load_started.elapsed())).await;
        api.window.store(k + 1, Ordering::Relaxed);
        let targets = Targets {
            instances: &mut system.instances,
            projector: &mut system.projector,
            pg: &system.pg,
            rabbit: &system.rabbit,
            redis: &system.redis,
        };
        let injected = Instant::now();
        let hit = faults::inject(*fault, targets, &mut rng)
            .await
            .with_context(|| format!("injecting {}", fault.name()))?;
        let restored = injected.elapsed();
        let recovery = load::probe(&api, &world, RECOVERY_BOUND).await;
        eprintln!(
            "torture: [{:>4.0}s] fault {}/{}: {} on {hit}: undone after {:.1}s, serving again {}",
            started.elapsed().as_secs_f64(),
            k + 1,
            order.len(),
            fault.name(),
            restored.as_secs_f64(),
            recovery.map_or("NEVER (bound 120 s)".to_owned(), |s| format!(
                "{s:.1}s later"
            ))
        );
        if recovery.is_none() {
            violations.push(Violation {
                kind: ViolationKind::NoRecovery,
                window: Some(k + 1),
                detail: format!(
                    "{} on {hit}: no probe message visible on both instances within 120 s",
                    fault.name()
                ),
            });
        }
        windows.push(Window {
            fault: fault.name().into(),
            recovery_secs: recovery,
        });
    }
    tokio::time::sleep(Duration::from_secs(args.seconds).saturating_sub(load_started.elapsed()))
        .await;
    eprintln!("torture: load stops; waiting for in-flight commands");
    stop_load.store(true, Ordering::Relaxed);
    for worker in workers {
        // Each command has its own 60 s deadline, so this ends.
        let _ = tokio::time::timeout(Duration::from_secs(120), worker).await;
    }
    let verdict = crate::judge::judge(
        &system,
        &api,
        &world,
        &subscribers,
        windows,
        violations,
        seed,
    )
    .await;
    let _ = stop_sockets.send(true);
    for task in socket_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    progress.abort();
    let passed = verdict?;
    if !passed {
        for log in &system.logs {
            print_tail(log);
        }
    }
    drop(system);
    Ok(passed)
}

async fn progress(api: Arc<Api>, subscribers: Vec<Arc<Subscriber>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (ops, acked) = {
            let history = api.history.lock().unwrap_or_else(|e| e.into_inner());
            (history.len(), history.iter().filter(|o| o.acked()).count())
        };
        let frames: usize = subscribers
            .iter()
            .map(|s| s.records.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum();
        let live = subscribers.iter().filter(|s| s.is_live()).count();
        eprintln!(
            "torture: [{:>4.0}s] window {}: {ops} commands, {acked} acknowledged; {frames} socket records; {live}/{} sockets live",
            api.started.elapsed().as_secs_f64(),
            api.window.load(Ordering::Relaxed),
            subscribers.len()
        );
    }
}

fn print_tail(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last lines of {} ---", log.display());
    for line in &lines[lines.len().saturating_sub(15)..] {
        eprintln!("{line}");
    }
}
