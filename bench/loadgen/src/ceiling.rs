//! `ceiling`: a minimal axum server with one JSON route and no auth, the
//! same body astrbot-rs answers `GET /api/v1/im/bots` with. `bench/compare.sh`
//! measures it in the same run as the reference for what this machine can
//! serve at all. Given a provider, it also relays chats (see `relay`).

use axum::serve::ListenerExt;

use crate::relay::Relay;

/// The body astrbot-rs answers `GET /api/v1/im/bots` with when no bot runs.
const CEILING_BODY: &str = r#"{"status":"ok","message":null,"data":{"bot_ids":[]}}"#;

/// Serves until killed. Returns true (failure) only when it cannot bind or
/// serve.
pub async fn run_ceiling(port: u16, provider: Option<&str>) -> bool {
    let mut app = axum::Router::new().route(
        "/api/v1/im/bots",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                CEILING_BODY,
            )
        }),
    );
    if let Some(provider) = provider {
        let chat = axum::routing::post(crate::relay::chat).with_state(Relay::new(provider));
        app = app.route("/api/v1/chat", chat);
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind 127.0.0.1:{port}: {error}");
            return true;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("http://{addr}"),
        Err(error) => eprintln!("no local address: {error}"),
    }
    // Relayed deltas are small writes; without TCP_NODELAY each one after
    // the first would wait for the client's delayed ACK.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("ceiling server failed: {error}");
        return true;
    }
    false
}
