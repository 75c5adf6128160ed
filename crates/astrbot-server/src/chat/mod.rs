//! The chat pipeline behind `/api/v1/chat`: a turn waits for its session to
//! be free, is routed to its config, picks a provider, and streams
//! AstrBot's SSE events back while the run saves the conversation and the
//! UI history. The run is its own task: a client that goes away loses
//! nothing, the turn is still answered and saved.

mod context;
mod events;
mod locks;
mod parts;
mod providers;
mod run;
mod session;
mod sink;
mod title;
mod turns;

use std::path::PathBuf;
use std::sync::Arc;

use astrbot_core::Store;
use tokio::sync::mpsc;

pub use events::{AgentStats, ChatEvent};
pub use parts::UserPart;
pub use providers::{ProviderRegistry, ProviderSet, DEMO_PROVIDER_ID, LOCAL_PROVIDER_TYPE};

use crate::config::ConfigRegistry;
use locks::SessionLocks;
pub use locks::SessionTicket;
use turns::Turns;

/// One user message to answer.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    /// The platform the turn came from (`webchat` for the developer API).
    pub platform_id: String,
    pub username: String,
    pub session_id: String,
    /// For the developer API
    /// `webchat:FriendMessage:webchat!<username>!<session_id>`.
    pub umo: String,
    pub parts: Vec<UserPart>,
    pub selected_provider: Option<String>,
    pub selected_model: Option<String>,
    /// `None` follows the config's `streaming_response`.
    pub streaming: Option<bool>,
    /// The request id carried by the stream's events (shared by every
    /// event, so cloning it costs no allocation).
    pub message_id: Arc<str>,
    /// The request created the session (so it has no title yet).
    pub new_session: bool,
}

/// Runs chat turns.
pub struct ChatService {
    store: Arc<dyn Store>,
    configs: Arc<ConfigRegistry>,
    providers: ProviderRegistry,
    locks: SessionLocks,
    /// Turns running or waiting for their session; at shutdown their
    /// model calls stop and they are saved with what they had.
    turns: Turns,
}

impl ChatService {
    pub fn new(store: Arc<dyn Store>, configs: Arc<ConfigRegistry>, demo_model: PathBuf) -> Self {
        ChatService {
            store,
            providers: ProviderRegistry::new(configs.clone(), demo_model),
            configs,
            locks: SessionLocks::default(),
            turns: Turns::default(),
        }
    }

    /// Completes when no turn is running or waiting (turns whose client
    /// left go on in the background until they are saved).
    pub async fn runs_finished(&self) {
        self.turns.finished().await
    }

    /// Stops the model calls of every running and waiting turn: each ends
    /// its stream with a note that the server is shutting down and saves
    /// the turn with the answer so far, instead of being lost when the
    /// process exits.
    pub fn interrupt_runs(&self) {
        self.turns.interrupt_all();
    }

    /// Counts work that finishes a turn outside the run (a platform
    /// sending the answer) as part of it until the guard is dropped, so
    /// that [`ChatService::runs_finished`] waits for it.
    pub(crate) fn hold_turn(&self) -> impl Drop {
        self.turns.enter()
    }

    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    /// Starts answering a turn and returns its events, `End` last. The run
    /// goes on to the end even if the receiver is dropped.
    pub fn start(self: &Arc<Self>, turn: ChatTurn) -> mpsc::Receiver<ChatEvent> {
        let place = self.reserve(&turn.umo);
        self.start_in_place(turn, place)
    }

    /// Takes the next place in `umo`'s queue of turns, for a turn that is
    /// started later with [`ChatService::start_in_place`].
    pub fn reserve(&self, umo: &str) -> SessionTicket {
        self.locks.enter(umo)
    }

    /// [`ChatService::start`] for a turn whose place was reserved.
    pub fn start_in_place(
        self: &Arc<Self>,
        turn: ChatTurn,
        place: SessionTicket,
    ) -> mpsc::Receiver<ChatEvent> {
        let (events, receiver) = mpsc::channel(256);
        let service = self.clone();
        let entered = self.turns.enter();
        tokio::spawn(async move { service.run(turn, entered, place, events).await });
        receiver
    }
}
