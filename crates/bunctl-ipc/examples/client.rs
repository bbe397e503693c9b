//! The client example of bunctl's bundled IPC crate, unchanged (it compiles against ours): asks
//! the server on `/tmp/bunctl.sock` for the status of `my-app` and prints the answer.

use bunctl_ipc::{IpcClient, IpcMessage, IpcResponse};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Connect to server
    let mut client = IpcClient::connect("/tmp/bunctl.sock").await?;

    // Optional: Set custom timeout
    client.set_timeout(Duration::from_secs(10));

    // Send message
    let message = IpcMessage::Status { name: Some("my-app".to_string()) };
    client.send(&message).await?;

    // Receive response
    match client.recv().await? {
        IpcResponse::Data { data } => {
            println!("Status: {}", data);
        }
        IpcResponse::Error { message } => {
            eprintln!("Error: {}", message);
        }
        _ => {}
    }

    Ok(())
}
