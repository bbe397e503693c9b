//! The server example of bunctl's bundled IPC crate, unchanged (it compiles against ours):
//! answers `Status` with a fixed record and everything else with an error, on
//! `/tmp/bunctl.sock`, until killed.
//!
//! Run it, then `cargo run -p bunctl-ipc --example client` in another terminal.
// The original code binds `name` without using it; the lint is silenced rather than the code
// edited.
#![allow(unused_variables)]

use bunctl_ipc::{IpcMessage, IpcResponse, IpcServer};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bind to platform-specific IPC endpoint
    let mut server = IpcServer::bind("/tmp/bunctl.sock").await?;

    loop {
        // Accept client connection
        let mut connection = server.accept().await?;

        // Optional: Set custom timeout for this connection
        connection.set_timeout(Duration::from_secs(60));

        // Handle connection in separate task
        tokio::spawn(async move {
            while let Ok(message) = connection.recv().await {
                let response = match message {
                    IpcMessage::Status { name } => IpcResponse::Data {
                        data: serde_json::json!({
                            "status": "running",
                            "pid": 1234
                        }),
                    },
                    _ => IpcResponse::Error { message: "Not implemented".to_string() },
                };

                if connection.send(&response).await.is_err() {
                    break; // Client disconnected
                }
            }
        });
    }
}
