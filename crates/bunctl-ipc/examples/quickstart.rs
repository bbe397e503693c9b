//! One process, both ends: binds a server on a temporary socket, connects a client, exchanges a
//! few requests, and shuts down. `cargo run -p bunctl-ipc --example quickstart`

use std::time::Instant;

use bunctl_ipc::{IpcClient, IpcMessage, IpcResponse, IpcServer};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("bunctl-quickstart-{}", std::process::id()));
    let endpoint = if cfg!(windows) { "bunctl-quickstart".into() } else { dir.join("bunctl.sock") };

    let mut server = IpcServer::bind(&endpoint).await?;
    println!("server listening on {}", server.endpoint().display());
    let daemon = tokio::spawn(async move {
        let mut conn = server.accept().await?;
        let peer = conn.peer_credentials();
        while let Ok(msg) = conn.recv().await {
            let reply = match msg {
                IpcMessage::Status { name } => IpcResponse::Data {
                    data: json!({ "name": name, "state": "running", "pid": 4242, "peer": format!("{peer:?}") }),
                },
                IpcMessage::List => IpcResponse::Data { data: json!(["web", "worker"]) },
                other => IpcResponse::Error { message: format!("{other:?} is not handled here") },
            };
            conn.send(&reply).await?;
        }
        Ok::<_, bunctl_ipc::IpcError>(())
    });

    let mut client = IpcClient::connect(&endpoint).await?;
    for msg in [
        IpcMessage::List,
        IpcMessage::Status { name: Some("web".into()) },
        IpcMessage::Stop { name: "web".into() },
    ] {
        let reply = client.request(&msg).await?;
        println!("-> {}\n<- {}", serde_json::to_string(&msg)?, serde_json::to_string(&reply)?);
    }

    let rounds = 10_000;
    let start = Instant::now();
    for _ in 0..rounds {
        client.request(&IpcMessage::List).await?;
    }
    println!(
        "{rounds} round trips: {:.1} µs each",
        start.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );

    drop(client);
    daemon.await??;
    let _ = std::fs::remove_dir(&dir);
    println!("done: the server removed its socket on the way out");
    Ok(())
}
