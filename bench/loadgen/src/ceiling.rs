//! `ceiling`: a minimal axum server with one JSON route and no auth, the
//! same body astrbot-rs answers `GET /api/v1/im/bots` with. `bench/compare.sh`
//! measures it in the same run as the reference for what this machine can
//! serve at all.

/// The body astrbot-rs answers `GET /api/v1/im/bots` with when no bot runs.
const CEILING_BODY: &str = r#"{"status":"ok","message":null,"data":{"bot_ids":[]}}"#;

/// Serves until killed. Returns true (failure) only when it cannot bind or
/// serve.
pub async fn run_ceiling(port: u16) -> bool {
    let app = axum::Router::new().route(
        "/api/v1/im/bots",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                CEILING_BODY,
            )
        }),
    );
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
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("ceiling server failed: {error}");
        return true;
    }
    false
}
