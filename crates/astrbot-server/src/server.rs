//! Start-up: open the store, load the configs, bind the listener, log what a
//! newcomer needs to know, and serve until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use astrbot_core::Store;
use astrbot_http::ConnectionLimits;
use astrbot_store::SqliteStore;
use tokio::net::TcpListener;

use crate::chat::{ChatService, DEMO_PROVIDER_ID};
use crate::config::{ConfigRegistry, DEFAULT_PASSWORD_MD5};
use crate::paths::DataRoot;
use crate::routes::router;
use crate::state::{App, AppState};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub root: DataRoot,
    /// Overrides `dashboard.host` (the CLI resolves the environment).
    pub host: Option<String>,
    /// Overrides `dashboard.port`; 0 picks a free port.
    pub port: Option<u16>,
    /// How long silent clients are given.
    pub limits: ConnectionLimits,
}

/// A bound, ready-to-serve server.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    limits: ConnectionLimits,
}

impl Server {
    /// Prepares everything and binds the listener; requests are accepted
    /// once `run` is called (the kernel queues them meanwhile).
    pub async fn bind(options: ServerOptions) -> anyhow::Result<Server> {
        let started_at = Instant::now();
        let root = options.root;
        root.create_dirs().with_context(|| {
            format!(
                "cannot create the data folders in {}",
                root.root().display()
            )
        })?;

        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&root.database()).await.with_context(|| {
                format!("cannot open the database {}", root.database().display())
            })?);
        let configs = Arc::new(ConfigRegistry::load(root.clone(), store.clone()).await?);
        let chat = Arc::new(ChatService::new(
            store.clone(),
            configs.clone(),
            root.demo_model(),
        ));
        // Load the demo model ahead of the first chat only when the
        // default config will use it.
        let default_providers = chat.providers().for_config(&configs.default_config()).ids();
        if default_providers.iter().any(|id| id == DEMO_PROVIDER_ID) {
            chat.providers().preload_demo();
        }
        let platforms = crate::platforms::start(configs.clone(), chat.clone());

        let dashboard = configs.default_config().dashboard();
        let host = options.host.unwrap_or(dashboard.host);
        let port = options.port.unwrap_or(dashboard.port);
        let listener = listen(&host, port)
            .await
            .with_context(|| format!("cannot listen on {host}:{port}"))?;

        let state = AppState::new(App {
            root,
            store,
            configs,
            chat,
            platforms,
            started_at,
            verified_keys: Default::default(),
            touch_pause: Default::default(),
        });
        Ok(Server {
            state,
            listener,
            limits: options.limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets open
    /// requests finish, waits for the chat turns still running (those whose
    /// client left, and the chat platforms' replies) and stops the platform
    /// bots last, so that their replies still go out. See
    /// [`ChatService::interrupt_runs`] to make the turns finish sooner.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.log_banner();
        let app = router(self.state.clone());
        astrbot_http::serve(self.listener, app, self.limits, shutdown).await;
        self.state.chat.runs_finished().await;
        self.state.platforms.shutdown().await;
        Ok(())
    }

    fn log_banner(&self) {
        let state = &self.state;
        let address = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let config = state.configs.default_config();
        let dashboard = config.dashboard();
        tracing::info!(
            root = %state.root.root().display(),
            config = %state.root.default_config().display(),
            "data root ready"
        );
        tracing::info!(
            "admin login: POST http://{address}/api/auth/login with username {:?}",
            dashboard.username
        );
        if dashboard.password_md5 == DEFAULT_PASSWORD_MD5 {
            tracing::warn!(
                "the admin password is still the default (\"astrbot\"): change dashboard.password \
                 (the MD5 hex of the new password) in {} before exposing this server",
                state.root.default_config().display()
            );
        }
        let providers = state.chat.providers().for_config(&config).ids();
        if providers.is_empty() {
            tracing::warn!(
                "no chat provider is configured and the demo model is not present: chats get no \
                 answer until you add a provider to {} or put the demo model at {} \
                 (scripts/fetch-model.sh downloads it into the repository's models/ folder)",
                state.root.default_config().display(),
                state.root.demo_model().display()
            );
        } else {
            tracing::info!(providers = ?providers, "chat providers of the default config");
        }
        tracing::info!(
            startup_ms = state.started_at.elapsed().as_millis() as u64,
            "astrbot-rs listening on http://{address}"
        );
    }
}

/// Connections the kernel queues for us before we accept them. tokio's
/// default (1,024) overflows when thousands of clients connect at once;
/// the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on the first address `host` resolves to that can be bound, as
/// `TcpListener::bind` does, but with a deeper accept queue.
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As `TcpListener::bind` does: a restarted server can bind again
        // while old connections linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket
            .bind(address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the host resolves to no address",
        )
    }))
}
