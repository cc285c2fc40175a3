//! The run's own PostgreSQL cluster, RabbitMQ node and Redis server, on free
//! loopback ports with their data in the run's directory: faults hit only
//! them, never the services other test runs share. Each is stopped and
//! removed when its guard drops (normal end, error, panic, Ctrl-C); what a
//! killed earlier run left is removed at the next start (`clean_leftovers`).

use anyhow::{Context, bail};
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The prefix of every run's directory, cluster and node name; the rest is
/// the pid of the run that owns it.
pub const PREFIX: &str = "torture_";

/// Runs a control command to its end (bounded by `timeout`), returning stdout.
pub async fn control(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(program).args(args).output(),
    )
    .await
    .with_context(|| format!("{program} {} did not finish in 90 s", args.join(" ")))?
    .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The same, blocking, for drop guards (which cannot await).
fn control_blocking(program: &str, args: &[&str]) -> bool {
    Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ports handed out in this run, so no two services get the same one.
#[derive(Default)]
pub struct Ports(HashSet<u16>);

impl Ports {
    /// A loopback port nobody listens on, outside the ranges RabbitMQ and its
    /// CLI use on their own (epmd 4369, distribution 25672, CLI 35672–35682).
    pub fn free(&mut self) -> anyhow::Result<u16> {
        for _ in 0..200 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let reserved = matches!(port, 4369 | 5432 | 5672 | 6379 | 25672 | 35672..=35682);
            if !reserved && !pg_config_names(port) && self.0.insert(port) {
                return Ok(port);
            }
        }
        bail!("no free loopback port found")
    }
}

/// Whether a (possibly stopped) PostgreSQL cluster is configured for `port`.
fn pg_config_names(port: u16) -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    versions
        .flatten()
        .filter_map(|v| std::fs::read_dir(v.path()).ok())
        .flatten()
        .flatten()
        .filter_map(|c| std::fs::read_to_string(c.path().join("postgresql.conf")).ok())
        .any(|conf| {
            conf.lines()
                .any(|l| l.trim_start().starts_with("port") && l.contains(&format!("= {port}")))
        })
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The newest PostgreSQL major version installed.
fn pg_version() -> anyhow::Result<String> {
    let mut versions: Vec<u32> = std::fs::read_dir("/etc/postgresql")
        .context("PostgreSQL (postgresql-common) is not installed")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions
        .last()
        .map(u32::to_string)
        .context("no PostgreSQL version under /etc/postgresql")
}

/// Removes what runs whose process is gone left behind: their clusters,
/// nodes, Redis servers, child processes and directories.
pub fn clean_leftovers() {
    if let Ok(version) = pg_version()
        && let Ok(clusters) = std::fs::read_dir(format!("/etc/postgresql/{version}"))
    {
        for cluster in clusters.flatten() {
            let name = cluster.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX).and_then(|p| p.parse().ok())
                && !alive(pid)
            {
                eprintln!("torture: removing cluster {version}/{name} left by run {pid}");
                drop_cluster(&version, &name);
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        eprintln!(
            "torture: removing {} left by run {pid}",
            entry.path().display()
        );
        kill_children_of_run(pid);
        let node = format!("{PREFIX}{pid}@localhost");
        if !control_blocking("rabbitmqctl", &["-n", &node, "stop"]) {
            kill_pid_file(&entry.path().join("rabbit/pid"));
        }
        kill_pid_file(&entry.path().join("redis.pid"));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Kills the chat processes a dead run started: each carries
/// `TORTURE_RUN={pid}` in its environment.
fn kill_children_of_run(run: u32) {
    let mark = format!("TORTURE_RUN={run}");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
            control_blocking("kill", &["-9", &pid.to_string()]);
        }
    }
}

fn kill_pid_file(path: &Path) {
    if let Ok(pid) = std::fs::read_to_string(path)
        && let Ok(pid) = pid.trim().parse::<u32>()
        && alive(pid)
    {
        control_blocking("kill", &["-9", &pid.to_string()]);
    }
}

/// The run's PostgreSQL cluster (Debian's `pg_createcluster`, as `.ci/run`).
pub struct PgCluster {
    pub version: String,
    pub name: String,
    pub port: u16,
}

impl PgCluster {
    pub async fn start(ports: &mut Ports) -> anyhow::Result<PgCluster> {
        let cluster = PgCluster {
            version: pg_version()?,
            name: format!("{PREFIX}{}", std::process::id()),
            port: ports.free()?,
        };
        let port = cluster.port.to_string();
        control(
            "pg_createcluster",
            &[
                &cluster.version,
                &cluster.name,
                "-p",
                &port,
                "--",
                "--auth=trust",
            ],
        )
        .await?;
        // Two instances' pools, the projector's and the checker's need more
        // than the default 100 connections.
        std::fs::write(
            format!(
                "/etc/postgresql/{}/{}/conf.d/90-torture.conf",
                cluster.version, cluster.name
            ),
            "listen_addresses = '127.0.0.1'\nmax_connections = 400\n",
        )?;
        cluster.ctl(&["start"]).await?;
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// `pg_ctlcluster … <args>`.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["--skip-systemctl-redirect", &self.version, &self.name];
        all.extend_from_slice(args);
        control("pg_ctlcluster", &all).await.map(|_| ())
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let port = self.port.to_string();
        for _ in 0..60 {
            if control("pg_isready", &["-h", "127.0.0.1", "-p", &port])
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("the run's PostgreSQL cluster did not become ready")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// `pg_dropcluster`, then the configuration directory it leaves behind
/// when it holds a file of ours (`conf.d/90-torture.conf`).
fn drop_cluster(version: &str, name: &str) {
    control_blocking("pg_dropcluster", &["--stop", version, name]);
    let _ = std::fs::remove_dir_all(format!("/etc/postgresql/{version}/{name}"));
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        drop_cluster(&self.version, &self.name);
    }
}

/// The run's RabbitMQ node, named `torture_{pid}@localhost`.
pub struct RabbitNode {
    pub node: String,
    pub port: u16,
    dir: PathBuf,
}

impl RabbitNode {
    pub async fn start(ports: &mut Ports, run_dir: &Path) -> anyhow::Result<RabbitNode> {
        let dir = run_dir.join("rabbit");
        std::fs::create_dir_all(&dir)?;
        let (port, dist) = (ports.free()?, ports.free()?);
        let node = RabbitNode {
            node: format!("{PREFIX}{}@localhost", std::process::id()),
            port,
            dir: dir.clone(),
        };
        // The machine's rabbitmq.conf names 5672: the node gets its own.
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )?;
        std::fs::write(dir.join("enabled_plugins"), "")?;
        // The server drops to the rabbitmq user, which must own its files.
        control(
            "chown",
            &["-R", "rabbitmq:rabbitmq", &run_dir.to_string_lossy()],
        )
        .await?;
        let status = tokio::process::Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node.node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .status()
            .await
            .context("cannot run rabbitmq-server")?;
        if !status.success() {
            bail!("rabbitmq-server -detached: {status}");
        }
        node.await_startup().await?;
        Ok(node)
    }

    /// `rabbitmqctl -n <node> <args>`.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", self.node.as_str()];
        all.extend_from_slice(args);
        control("rabbitmqctl", &all).await
    }

    /// Until the node serves (it is not registered with epmd at once).
    pub async fn await_startup(&self) -> anyhow::Result<()> {
        for _ in 0..60 {
            if self
                .ctl(&["await_startup", "--timeout", "30"])
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        bail!("the run's RabbitMQ node {} did not start", self.node)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        if !control_blocking("rabbitmqctl", &["-n", &self.node, "stop"]) {
            kill_pid_file(&self.dir.join("pid"));
        }
    }
}

/// The run's Redis server.
pub struct RedisServer {
    pub port: u16,
    pid_file: PathBuf,
}

impl RedisServer {
    pub async fn start(ports: &mut Ports, run_dir: &Path) -> anyhow::Result<RedisServer> {
        let port = ports.free()?;
        let server = RedisServer {
            port,
            pid_file: run_dir.join("redis.pid"),
        };
        let (dir, log) = (run_dir.to_string_lossy(), run_dir.join("redis.log"));
        control(
            "redis-server",
            &[
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                // Redis 7 refuses DEBUG (the DEBUG SLEEP fault) unless told.
                "--enable-debug-command",
                "local",
                "--dir",
                &dir,
                "--pidfile",
                &server.pid_file.to_string_lossy(),
                "--logfile",
                &log.to_string_lossy(),
            ],
        )
        .await?;
        for _ in 0..50 {
            if server.cli(&["PING"]).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the run's Redis server did not answer")
    }

    /// `redis-cli -p <port> <args>`.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str()];
        all.extend_from_slice(args);
        control("redis-cli", &all).await
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let port = self.port.to_string();
        if !control_blocking("redis-cli", &["-p", &port, "shutdown", "nosave"]) {
            kill_pid_file(&self.pid_file);
        }
    }
}
