//! One agent run: provider selection, the model call (streamed or whole),
//! the events of AstrBot's catalogue in AstrBot's order, and the writes to
//! the conversation and the UI history.

use std::sync::Arc;

use astrbot_core::persona;
use astrbot_core::store::{
    ChatStateQuery, ConversationContent, ConversationRecord, ConversationUpdate, NewHistory,
};
use astrbot_core::{
    ChatMessage, ChatProvider, ChatRequest, Delta, ProviderError, StoreError, StoreResult,
    StreamChunk, TokenUsage, Umo, WEBCHAT_PLATFORM_ID,
};
use futures::StreamExt;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

use super::context::{first_recent, persona_messages, readable_history, user_turn, PersonaChoice};
use super::events::{AgentStats, ChatEvent};
use super::locks::SessionTicket;
use super::parts::UserPart;
use super::sink::EventSink;
use super::turns::{Interrupt, Turn};
use super::{ChatService, ChatTurn};
use crate::config::LoadedConfig;
use crate::platforms::commands::{self, Command};

/// Preference holding a session's chosen provider, as AstrBot names it.
pub(super) const PROVIDER_PREFERENCE: &str = "provider_perf_chat_completion";
/// Preference holding a session's current conversation id.
pub(super) const CONVERSATION_PREFERENCE: &str = "sel_conv_id";
/// Preference holding a session's settings, among them its persona.
const SESSION_CONFIG_PREFERENCE: &str = "session_service_config";

/// A conversation a turn goes on with: its id and its stored messages.
pub(super) struct OpenConversation {
    pub conversation_id: String,
    messages: Vec<Box<RawValue>>,
}

/// The conversation as it will be saved once the answer is in: its id, and
/// its messages up to and including this turn's user message. The stored
/// ones stay the text they were read as, whatever they hold (tool calls,
/// AstrBot's reasoning parts, fields we do not use), so that saving loses
/// nothing.
struct NextConversation {
    conversation_id: String,
    messages: Vec<Box<RawValue>>,
}

impl NextConversation {
    /// The update that adds `answer` as the assistant's message.
    fn with_answer(mut self, answer: &Answer) -> ConversationUpdate {
        let message = ChatMessage::text("assistant", answer.text.clone());
        self.messages.push(stored_message(&message));
        ConversationUpdate {
            conversation_id: self.conversation_id,
            messages: self.messages,
            token_usage: i64::try_from(answer.usage.total()).unwrap_or(i64::MAX),
        }
    }
}

/// A message as a conversation stores it.
fn stored_message(message: &ChatMessage) -> Box<RawValue> {
    // Only a map with keys that are not strings fails to convert, and a
    // message has none.
    serde_json::value::to_raw_value(message).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The answer shown when a turn's conversation could not be loaded; the
/// opening is AstrBot's wording for an agent's error.
const UNLOADED_CONVERSATION: &str = "Error occurred while processing agent request: \
     the conversation could not be loaded; please try again.";

/// What a turn reads before it picks a provider; see `ChatService::chat_state`.
struct TurnState {
    preferred_provider: Option<Value>,
    conversation: StoreResult<Option<ConversationRecord>>,
    persona: PersonaChoice,
}

/// What the answer builds on besides the new message.
struct TurnContext {
    conversation: OpenConversation,
    /// The persona's system prompt and opening dialogue.
    persona: Vec<ChatMessage>,
}

/// One call to the model: the request, the conversation to save with its
/// answer, and the turn's interrupt (fired at shutdown).
struct ModelCall<'a> {
    request: ChatRequest,
    next: NextConversation,
    interrupt: &'a mut Interrupt,
}

/// What the model answered (or the error text shown instead).
struct Answer {
    text: String,
    reasoning: String,
    usage: TokenUsage,
    failed: bool,
}

impl ChatService {
    pub(super) async fn run(
        self: Arc<Self>,
        turn: ChatTurn,
        mut entered: Turn,
        place: SessionTicket,
        events: Sender<ChatEvent>,
    ) {
        let events = EventSink::new(events, self.turns.interrupted());
        let _session = place.wait().await;
        let config = self.configs.resolve_for_umo(&turn.umo);
        let has_content = turn.parts.iter().any(UserPart::is_content);
        let command = (turn.platform_id == WEBCHAT_PLATFORM_ID)
            .then(|| commands::webchat_command(&config, &turn.parts))
            .flatten();
        if let Some(command) = command {
            self.answer_command(&config, command, &turn, &events).await;
        } else if config.chat.enable && has_content {
            // Both the provider choice and the conversation stand between
            // the request and the provider's first token: one read.
            let state = self.chat_state(&turn.umo, &config).await;
            if let Some(provider) = self.pick_provider(&config, &turn, state.preferred_provider) {
                match self
                    .or_new_conversation(&turn.umo, state.conversation)
                    .await
                {
                    Ok(conversation) => {
                        let context = TurnContext {
                            conversation,
                            persona: persona_messages(&config, &state.persona),
                        };
                        let interrupt = &mut entered.interrupt;
                        self.answer(&config, provider, context, &turn, interrupt, &events)
                            .await
                    }
                    Err(error) => {
                        tracing::error!(%error, umo = %turn.umo, "could not load the conversation");
                        self.report_unloaded_conversation(&config, &turn, &events)
                            .await;
                    }
                }
            }
        }
        events
            .send(ChatEvent::End {
                message_id: turn.message_id.clone(),
            })
            .await;
        // Only at shutdown are events ever held back; the turn is saved.
        events.deliver_held().await;
    }

    /// The session's preferred provider, its current conversation and its
    /// persona, in one read. When that read fails (a stored value that
    /// cannot be read, say), the first two are read on their own, so that
    /// an unreadable provider choice is only ignored, as it would be on its
    /// own, instead of also costing the conversation and so the answer.
    async fn chat_state(&self, umo: &str, config: &LoadedConfig) -> TurnState {
        let default_persona = config.chat.default_personality.as_str();
        let query = ChatStateQuery {
            umo,
            provider_key: PROVIDER_PREFERENCE,
            conversation_key: CONVERSATION_PREFERENCE,
            session_config_key: SESSION_CONFIG_PREFERENCE,
            default_persona,
        };
        match self.store.get_chat_state(query).await {
            Ok(state) => TurnState {
                preferred_provider: state.provider_preference,
                conversation: Ok(state.conversation),
                persona: PersonaChoice {
                    id: state.persona_id,
                    stored: state.stored_persona,
                },
            },
            Err(error) => {
                tracing::warn!(%error, %umo, "could not read the session's state at once");
                let conversation = self.find_current_conversation(umo).await;
                let conversation_persona = conversation
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .and_then(|conversation| conversation.persona_id.as_deref());
                let id = persona::chosen_id(None, conversation_persona, default_persona);
                TurnState {
                    preferred_provider: self.stored_provider_choice(umo).await,
                    persona: PersonaChoice {
                        id: id.map(str::to_owned),
                        stored: None,
                    },
                    conversation,
                }
            }
        }
    }

    /// `selected_provider` when given (unknown means no answer, as in
    /// AstrBot), else the session's preference (`preferred`), the
    /// config's default, the config's first provider, or the demo model.
    fn pick_provider(
        &self,
        config: &Arc<LoadedConfig>,
        turn: &ChatTurn,
        preferred: Option<Value>,
    ) -> Option<Arc<dyn ChatProvider>> {
        let chosen = self.provider_for(config, turn.selected_provider.as_deref(), preferred);
        if chosen.is_none() && turn.selected_provider.as_deref().is_none_or(str::is_empty) {
            tracing::warn!(
                config.id = %config.id,
                "no chat provider is configured, so chats get no answer: add one to \
                 `provider_sources` and `provider` in the config (see the README), or fetch \
                 the demo model with scripts/fetch-model.sh"
            );
        }
        chosen
    }

    /// The provider a session's turn uses; see `pick_provider`.
    pub async fn resolve_provider(
        &self,
        config: &Arc<LoadedConfig>,
        umo: &str,
        selected: Option<&str>,
    ) -> Option<Arc<dyn ChatProvider>> {
        let preferred = match selected.filter(|s| !s.is_empty()) {
            Some(_) => None,
            None => self.stored_provider_choice(umo).await,
        };
        self.provider_for(config, selected, preferred)
    }

    /// The session's stored provider choice; one that cannot be read is
    /// no choice.
    async fn stored_provider_choice(&self, umo: &str) -> Option<Value> {
        self.store
            .get_preference("umo", umo, PROVIDER_PREFERENCE)
            .await
            .ok()
            .flatten()
    }

    /// `selected` if given, else `preferred` (a stored preference), the
    /// config's default or its first provider.
    fn provider_for(
        &self,
        config: &Arc<LoadedConfig>,
        selected: Option<&str>,
        preferred: Option<Value>,
    ) -> Option<Arc<dyn ChatProvider>> {
        let set = self.providers.for_config(config);
        if let Some(selected) = selected.filter(|s| !s.is_empty()) {
            let found = set.get(selected);
            if found.is_none() {
                tracing::warn!(provider.id = selected, config.id = %config.id, "selected_provider is not a configured chat provider; no answer");
            }
            return found;
        }
        preferred
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|id| set.get(id))
            .or_else(|| set.get(&config.chat.default_provider_id))
            .or_else(|| set.first())
    }

    async fn answer(
        &self,
        config: &LoadedConfig,
        provider: Arc<dyn ChatProvider>,
        context: TurnContext,
        turn: &ChatTurn,
        interrupt: &mut Interrupt,
        events: &EventSink,
    ) {
        let TurnContext {
            conversation:
                OpenConversation {
                    conversation_id,
                    messages: stored,
                },
            persona,
        } = context;
        let (for_model, for_storage) = user_turn(config, turn, &*self.store).await;

        // One list, built in place: a long conversation's messages are
        // moved into the request, never copied. The persona takes the place
        // of the turns left out.
        let mut messages = readable_history(&stored, persona.len() + 1);
        let first = first_recent(&messages, config.chat.max_context_length);
        messages.splice(..first, persona);
        messages.push(for_model);
        let request = ChatRequest {
            messages,
            model: turn.selected_model.clone().filter(|m| !m.is_empty()),
            max_tokens: None,
        };

        let first_exchange = stored.is_empty();
        let mut kept = stored;
        kept.push(stored_message(&for_storage));
        let call = ModelCall {
            request,
            next: NextConversation {
                conversation_id,
                messages: kept,
            },
            interrupt,
        };

        let streaming = turn.streaming.unwrap_or(config.chat.streaming_response);
        let answer = if streaming {
            self.stream_answer(config, &*provider, call, turn, events)
                .await
        } else {
            self.whole_answer(&*provider, call, turn, events).await
        };
        if !answer.failed && first_exchange {
            self.spawn_title(provider, turn, for_storage.plain_text());
        }
    }

    async fn stream_answer(
        &self,
        config: &LoadedConfig,
        provider: &dyn ChatProvider,
        call: ModelCall<'_>,
        turn: &ChatTurn,
        events: &EventSink,
    ) -> Answer {
        let ModelCall {
            request,
            next,
            interrupt,
        } = call;
        let start = epoch_seconds();
        let mut first_token = None;
        let mut answer = Answer {
            text: String::new(),
            reasoning: String::new(),
            usage: TokenUsage::default(),
            failed: false,
        };
        let mut failure = None;
        // An interrupt already given wins, so that a turn that got its
        // session after it does not call the model at all.
        let opened = tokio::select! {
            biased;
            () = &mut *interrupt => Err(shutting_down()),
            opened = provider.chat_stream(request) => opened,
        };
        match opened {
            Ok(mut stream) => loop {
                let chunk = tokio::select! {
                    biased;
                    chunk = stream.next() => chunk,
                    () = &mut *interrupt => Some(Err(shutting_down())),
                };
                let Some(chunk) = chunk else { break };
                match chunk {
                    Ok(StreamChunk::Text(delta)) if !delta.is_empty() => {
                        first_token.get_or_insert_with(epoch_seconds);
                        answer.text.push_str(&delta);
                        events.send(plain(delta, true, None, turn)).await;
                    }
                    Ok(StreamChunk::Reasoning(delta)) if !delta.is_empty() => {
                        answer.reasoning.push_str(&delta);
                        if config.chat.display_reasoning_text {
                            events
                                .send(plain(delta, true, Some("reasoning"), turn))
                                .await;
                        }
                    }
                    Ok(StreamChunk::Usage(usage)) => answer.usage = usage,
                    Ok(_) => {}
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            },
            Err(error) => failure = Some(error),
        }
        if failure.is_none() && answer.text.is_empty() {
            failure = Some(no_text());
        }
        if let Some(error) = failure {
            let message = failure_text(provider, &error, turn);
            let delta = if answer.text.is_empty() {
                message
            } else {
                format!("\n\n{message}")
            };
            answer.text.push_str(&delta);
            answer.failed = true;
            events.send(plain(delta.into(), true, None, turn)).await;
        }

        let end = epoch_seconds();
        let stats = AgentStats {
            usage: answer.usage,
            start_time: start,
            end_time: end,
            time_to_first_token: first_token.map_or(0.0, |t| t - start),
        };
        events.send(ChatEvent::AgentStats(stats)).await;
        events
            .send(ChatEvent::Complete {
                text: answer.text.clone(),
                reasoning: answer.reasoning.clone(),
                message_id: turn.message_id.clone(),
            })
            .await;
        self.save_bot_turn(turn, &answer, Some(&stats), events, Some(next))
            .await;
        answer
    }

    async fn whole_answer(
        &self,
        provider: &dyn ChatProvider,
        call: ModelCall<'_>,
        turn: &ChatTurn,
        events: &EventSink,
    ) -> Answer {
        let ModelCall {
            request,
            next,
            interrupt,
        } = call;
        let start = epoch_seconds();
        let called = tokio::select! {
            biased;
            () = interrupt => Err(shutting_down()),
            called = provider.chat(request) => called,
        };
        let answer = match called {
            // Failed, but what came with it (reasoning, usage) is kept.
            Ok(response) if response.text.is_empty() => Answer {
                text: failure_text(provider, &no_text(), turn),
                reasoning: response.reasoning,
                usage: response.usage,
                failed: true,
            },
            Ok(response) => Answer {
                text: response.text,
                reasoning: response.reasoning,
                usage: response.usage,
                failed: false,
            },
            Err(error) => Answer {
                text: failure_text(provider, &error, turn),
                reasoning: String::new(),
                usage: TokenUsage::default(),
                failed: true,
            },
        };
        let end = epoch_seconds();
        events
            .send(plain(answer.text.as_str().into(), false, None, turn))
            .await;
        self.save_bot_turn(turn, &answer, None, events, Some(next))
            .await;
        let stats = AgentStats {
            usage: answer.usage,
            start_time: start,
            end_time: end,
            time_to_first_token: end - start,
        };
        events.send(ChatEvent::AgentStats(stats)).await;
        answer
    }

    /// Answers a built-in command (`/reset`, `/new`, `/help` …) sent to
    /// webchat, as AstrBot's pipeline does for every platform: the reply
    /// is one whole `plain`, kept in the history but not in the
    /// conversation, and the model is not called.
    async fn answer_command(
        self: &Arc<Self>,
        config: &Arc<LoadedConfig>,
        command: Command,
        turn: &ChatTurn,
        events: &EventSink,
    ) {
        let umo = match turn.umo.parse::<Umo>() {
            Ok(umo) => umo,
            Err(error) => {
                tracing::error!(%error, umo = %turn.umo, "a webchat turn's UMO does not parse");
                return;
            }
        };
        let context = commands::Context {
            chat: self,
            config,
            umo: &umo,
            sender_id: &turn.username,
            is_admin: config.admins_id.contains(&turn.username),
            is_group: false,
        };
        let reply = commands::run(command, context).await;
        self.answer_without_model(turn, reply, false, events).await;
    }

    /// Tells the user that the turn could not go to the model because its
    /// conversation could not be read or started (the database failing,
    /// say), as AstrBot shows an agent's error: as the answer's text, kept
    /// in the history. The conversation itself is left as it was.
    async fn report_unloaded_conversation(
        &self,
        config: &LoadedConfig,
        turn: &ChatTurn,
        events: &EventSink,
    ) {
        let streaming = turn.streaming.unwrap_or(config.chat.streaming_response);
        let text = UNLOADED_CONVERSATION.to_owned();
        self.answer_without_model(turn, text, streaming, events)
            .await;
    }

    /// Answers with `text` of the server's own: one `plain` event, kept in
    /// the history but not in the conversation.
    async fn answer_without_model(
        &self,
        turn: &ChatTurn,
        text: String,
        streaming: bool,
        events: &EventSink,
    ) {
        let answer = Answer {
            text,
            reasoning: String::new(),
            usage: TokenUsage::default(),
            failed: true,
        };
        events
            .send(plain(answer.text.as_str().into(), streaming, None, turn))
            .await;
        self.save_bot_turn(turn, &answer, None, events, None).await;
    }

    /// Writes the bot turn to the UI history and, when the answer is kept,
    /// the conversation with it, in one transaction; then reports the
    /// turn's id.
    async fn save_bot_turn(
        &self,
        turn: &ChatTurn,
        answer: &Answer,
        stats: Option<&AgentStats>,
        events: &EventSink,
        next: Option<NextConversation>,
    ) {
        let mut message = Vec::new();
        if !answer.text.is_empty() {
            message.push(json!({"type": "plain", "text": answer.text}));
        }
        let mut content = json!({"type": "bot", "message": message});
        if !answer.reasoning.is_empty() {
            content["reasoning"] = Value::String(answer.reasoning.clone());
        }
        if let Some(stats) = stats {
            content["agent_stats"] = stats.to_json();
        }
        // A failed answer is shown and kept in the history, but the model
        // does not see it next time.
        let conversation = next
            .filter(|_| !answer.failed)
            .map(|next| next.with_answer(answer));
        let saved = self
            .store
            .save_answer(
                NewHistory {
                    platform_id: turn.platform_id.clone(),
                    user_id: turn.session_id.clone(),
                    sender_id: Some("bot".to_owned()),
                    sender_name: Some("bot".to_owned()),
                    content,
                },
                conversation,
            )
            .await;
        match saved {
            Ok(record) => {
                let event = ChatEvent::MessageSaved {
                    id: record.id,
                    created_at: astrbot_core::time::iso(record.created_at),
                };
                events.send(event).await;
            }
            Err(error) => {
                tracing::error!(%error, session.id = %turn.session_id, "could not save the bot turn")
            }
        }
    }

    /// The session's current conversation, created on first use.
    pub(super) async fn current_conversation(&self, umo: &str) -> StoreResult<OpenConversation> {
        let found = self.find_current_conversation(umo).await;
        self.or_new_conversation(umo, found).await
    }

    /// `found`, or a new current conversation when the session has none,
    /// or has one that cannot be read or holds no list of messages (AstrBot
    /// itself could not go on with it). Such a conversation is left as it
    /// is, for its owner to recover; the session goes on in the new one.
    async fn or_new_conversation(
        &self,
        umo: &str,
        found: StoreResult<Option<ConversationRecord>>,
    ) -> StoreResult<OpenConversation> {
        let found = match found {
            Ok(Some(conversation)) => conversation,
            Ok(None) => return self.new_open_conversation(umo).await,
            Err(StoreError::Corrupt(error)) => {
                tracing::warn!(%error, %umo, "the current conversation cannot be read; it is kept as it is and a new one started");
                return self.new_open_conversation(umo).await;
            }
            Err(error) => return Err(error),
        };
        match found.content {
            ConversationContent::Messages(messages) => Ok(OpenConversation {
                conversation_id: found.conversation_id,
                messages,
            }),
            ConversationContent::Unreadable(error) => {
                tracing::warn!(%error, conversation.id = %found.conversation_id, %umo, "the current conversation holds no list of messages; it is kept as it is and a new one started");
                self.new_open_conversation(umo).await
            }
        }
    }

    async fn new_open_conversation(&self, umo: &str) -> StoreResult<OpenConversation> {
        let created = self.new_conversation(umo).await?;
        Ok(OpenConversation {
            conversation_id: created.conversation_id,
            messages: Vec::new(),
        })
    }

    /// The session's current conversation, if it has one; reads only.
    async fn find_current_conversation(
        &self,
        umo: &str,
    ) -> StoreResult<Option<ConversationRecord>> {
        let selected = self
            .store
            .get_preference("umo", umo, CONVERSATION_PREFERENCE)
            .await?
            .and_then(|value| value.as_str().map(str::to_owned));
        match selected {
            Some(id) => self.store.get_conversation(&id).await,
            None => Ok(None),
        }
    }
}

/// Why an answer without text counts as failed: a provider that answered
/// 200 with something else (an HTML page, a compressed body, only tool
/// calls, a content filter's stop) would otherwise give the user an empty
/// reply without a word, and an empty assistant message in the
/// conversation, which some providers refuse on every later turn.
fn no_text() -> ProviderError {
    ProviderError::Other("the provider's answer held no text".to_owned())
}

/// Why a turn's model call stopped at shutdown.
fn shutting_down() -> ProviderError {
    ProviderError::Other("the server is shutting down".to_owned())
}

fn plain(
    text: Delta,
    streaming: bool,
    chain_type: Option<&'static str>,
    turn: &ChatTurn,
) -> ChatEvent {
    ChatEvent::Plain {
        text,
        streaming,
        chain_type,
        message_id: turn.message_id.clone(),
    }
}

/// The text a user sees when the model call failed; close to AstrBot's
/// non-streaming wording. Provider errors never carry keys.
fn failure_text(provider: &dyn ChatProvider, error: &ProviderError, turn: &ChatTurn) -> String {
    tracing::warn!(provider.id = provider.id(), session.id = %turn.session_id, %error, "provider call failed");
    format!("LLM 响应错误: {error}")
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
