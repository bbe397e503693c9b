//! The reference daemon on a temporary endpoint inside this process, for `demo` and
//! `bench --spawn`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use bunctl_ipc::{EventBus, IpcError, IpcServer, ServerOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::CliError;
use bunctl_ipc_daemon::{Daemon, DaemonOptions};

/// A [`Daemon`] serving a fresh endpoint in the current runtime.
///
/// On Unix the socket lives in a new private temporary directory; on Windows the endpoint is a
/// pipe name unique to this process and call. [`stop`](Self::stop) shuts the daemon down (its
/// apps are stopped, the socket removed) and deletes the directory; dropping it aborts the
/// daemon instead, and the directory is still deleted.
#[derive(Debug)]
pub struct LocalDaemon {
    dir: Option<TempDir>,
    endpoint: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), IpcError>>,
}

impl LocalDaemon {
    /// Binds a temporary endpoint whose name contains `label` and starts serving it. Must be
    /// called inside a tokio runtime.
    pub async fn start(
        label: &str,
        options: DaemonOptions,
        server_options: ServerOptions,
    ) -> Result<LocalDaemon, CliError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::Builder::new().prefix("bunctl-ipc-").tempdir()?;
        let endpoint = if cfg!(windows) {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            PathBuf::from(format!(r"\\.\pipe\bunctl-{label}-{}-{n}", std::process::id()))
        } else {
            dir.path().join(format!("{label}.sock"))
        };
        let server = IpcServer::bind_with(&endpoint, server_options)
            .await
            .map_err(|e| CliError::Other(format!("cannot serve at {}: {e}", endpoint.display())))?;
        let daemon = Daemon::with_options(EventBus::new(), options);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .serve(server, async {
                    let _ = stop.await;
                })
                .await
        });
        Ok(LocalDaemon { dir: Some(dir), endpoint, shutdown: Some(shutdown), task })
    }

    /// Where the daemon listens.
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    /// Shuts the daemon down gracefully and waits for it: apps stopped, socket removed,
    /// temporary directory deleted.
    pub async fn stop(mut self) -> Result<(), CliError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let served = (&mut self.task)
            .await
            .map_err(|e| CliError::Other(format!("the daemon task failed: {e}")))?;
        served.map_err(|e| CliError::Other(format!("the daemon failed: {e}")))?;
        if let Some(dir) = self.dir.take() {
            dir.close()?;
        }
        Ok(())
    }
}

impl Drop for LocalDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}
