//! The real `opentrail serve` as a child process on a fresh data directory: start it, wait
//! until it answers, read the admin credentials it wrote, watch its peak RSS, stop it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin key the server created on first start.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Detections of a started server: `serve --rules DIR` and the alert webhook.
#[derive(Debug, Default, Clone)]
pub struct Detections {
    pub rules_dir: Option<PathBuf>,
    pub alert_webhook_url: Option<String>,
}

pub struct ServerProcess {
    child: Option<Child>,
    pub pid: u32,
    pub endpoint: String,
    pub host: String,
    pub credentials: Credentials,
}

impl ServerProcess {
    /// Starts `binary serve` on `data_dir` (which must not exist yet, so every run starts
    /// fresh) and waits until `/health` answers and the credentials file exists.
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<ServerProcess> {
        if data_dir.exists() {
            bail!(
                "{} already exists; the benchmark needs a fresh data directory",
                data_dir.display()
            );
        }
        ServerProcess::start_on(binary, data_dir, log).await
    }

    /// Starts `opentrail serve` on a data directory that may already hold events (a
    /// directory an earlier run kept).
    pub async fn start_on(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<ServerProcess> {
        ServerProcess::start_with(binary, data_dir, log, &Detections::default()).await
    }

    /// [`ServerProcess::start_on`] with detections set up as `detections` says (none by
    /// default, whatever this process's environment holds).
    pub async fn start_with(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
        detections: &Detections,
    ) -> anyhow::Result<ServerProcess> {
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(&host)
            .env("OPENTRAIL_LOG_FORMAT", "text")
            // Rules or a webhook inherited from the caller's shell would load every
            // server the harness starts, the baselines included.
            .env_remove("OPENTRAIL_RULES_DIR")
            .env_remove("OPENTRAIL_ALERT_WEBHOOK_URL");
        if let Some(rules_dir) = &detections.rules_dir {
            command.arg("--rules").arg(rules_dir);
        }
        if let Some(url) = &detections.alert_webhook_url {
            command.env("OPENTRAIL_ALERT_WEBHOOK_URL", url);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .context("cannot share the server log file")?,
            )
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id();
        let mut server = ServerProcess {
            child: Some(child),
            pid,
            endpoint: format!("http://{host}"),
            host,
            credentials: Credentials {
                access_key_id: String::new(),
                secret_access_key: String::new(),
            },
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        let credentials_file = data_dir.join("credentials");
        loop {
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait().context("cannot watch the server")?
            {
                bail!(
                    "the server exited during start-up ({status}); see {}",
                    log.display()
                );
            }
            let healthy = matches!(
                http.get(format!("{}/health", server.endpoint)).send().await,
                Ok(response) if response.status().is_success()
            );
            if healthy && credentials_file.exists() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the server did not become ready in {READY_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.credentials = read_credentials(&credentials_file)?;
        Ok(server)
    }

    /// The server's resident-set high-water mark (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        peak_rss_kb(self.pid).map(|kb| kb as f64 / 1024.0)
    }

    /// CPU seconds the server has used (user and system), from `/proc`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// SIGKILL, then waits for the exit: for a server whose data dir is thrown away,
    /// where a graceful stop (seconds of sealing and archiving) would only add time.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("cannot kill the server")?;
            child.wait().context("cannot wait for the server")?;
        }
        Ok(())
    }

    /// SIGTERM (graceful: drains and closes the store), then waits for the exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std has no portable kill(SIGTERM); the kill(1) utility is everywhere this runs.
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .context("cannot run kill -TERM")?;
        if !status.success() {
            let _ = child.kill();
        }
        let started = Instant::now();
        loop {
            if child
                .try_wait()
                .context("cannot wait for the server")?
                .is_some()
            {
                return Ok(());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Never leave a server behind when the harness fails half-way.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// VmHWM of a process, in kB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

/// User and system CPU seconds of the process whose `stat` file is `stat_path`.
pub fn cpu_seconds(stat_path: &str) -> Option<f64> {
    cpu_seconds_of_stat(&std::fs::read_to_string(stat_path).ok()?)
}

fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    // USER_HZ: the unit of `/proc` times, 100 on every Linux architecture's ABI.
    const TICKS_PER_SECOND: f64 = 100.0;
    // The fields after the command name (field 2, in parentheses, may hold spaces):
    // utime and stime, fields 14 and 15, are the 12th and 13th of them.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// VmRSS of a process, in kB: its resident memory now.
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

/// One `kB` line of `/proc/<pid>/status`.
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A port that was free a moment ago (the server binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener
        .local_addr()
        .context("cannot read the free port")?
        .port())
}

/// The `[default]` profile of an AWS shared-credentials file.
fn read_credentials(path: &Path) -> anyhow::Result<Credentials> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut access_key_id = None;
    let mut secret_access_key = None;
    for line in text.lines() {
        if let Some((name, value)) = line.split_once('=') {
            match name.trim() {
                "aws_access_key_id" => access_key_id = Some(value.trim().to_owned()),
                "aws_secret_access_key" => secret_access_key = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
        }),
        _ => bail!(
            "{} has no aws_access_key_id/aws_secret_access_key",
            path.display()
        ),
    }
}

/// Writes dirty pages and drops the page cache (Linux, root only), so the next reads come
/// from the disk.
pub fn drop_page_cache() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("cannot write /proc/sys/vm/drop_caches")
}

/// Bytes a directory tree occupies on disk (allocated blocks, not apparent sizes, so
/// preallocated journal space counts as what it costs).
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![path.to_owned()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (opentrail (x) serve) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(cpu_seconds_of_stat(stat), Some(3.25));
        assert_eq!(cpu_seconds_of_stat("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn the_harness_reads_its_own_cpu_time_as_it_grows() {
        let before = cpu_seconds("/proc/self/stat").expect("this process's CPU time");
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        // Until the kernel has counted at least one more tick (10 ms) of this thread.
        while cpu_seconds("/proc/self/stat").expect("CPU time") <= before {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(1));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "CPU time never grew"
            );
        }
    }
}
