//! The system under test as child processes: two `chat up` instances and a
//! standalone `projector`, each restartable after a `kill -9`, each killed
//! when its guard drops.

use anyhow::{Context, bail};
use loadgen::http::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One process of the system, with what it takes to start it again.
pub struct Proc {
    pub name: String,
    /// `host:port` of its HTTP server.
    pub addr: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// Answers 200 once it serves.
    ready_path: &'static str,
    child: Option<Child>,
}

impl Proc {
    pub fn new(
        name: &str,
        addr: String,
        program: PathBuf,
        args: &[&str],
        env: Vec<(String, String)>,
        log: PathBuf,
        ready_path: &'static str,
    ) -> Proc {
        Proc {
            name: name.to_owned(),
            addr,
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            log,
            ready_path,
            child: None,
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("CHAT_HTTP_ADDR", &self.addr)
            // Marks the process as this run's, for a later run's cleanup.
            .env("TORTURE_RUN", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`).
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("not running")?.to_string();
        crate::services::control("kill", &[&format!("-{signal}"), &pid])
            .await
            .map(|_| ())
    }

    /// Until it answers its ready path with 200, or `within` passes.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("{} exited: {status}; see {}", self.name, self.log.display());
            }
            let mut client = Client::new(&self.addr);
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                client.request("GET", self.ready_path, None, None),
            )
            .await;
            if let Ok(Ok(response)) = answer
                && response.status == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "{} not ready within {within:?}; see {}",
            self.name,
            self.log.display()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL also ends a process a fault left stopped (SIGSTOP).
        self.kill9();
    }
}
