//! AstrBot's built-in commands for chat platforms and webchat: `help`,
//! `sid`, `new`, `reset`, `provider` and `model`, typed after the wake
//! prefix (`/sid`). Switching the provider or model, and resetting a
//! group's conversation, are for admins (`admins_id`), as in AstrBot.

use std::borrow::Cow;
use std::sync::Arc;

use astrbot_core::Umo;

use super::wake::{strip_wake_prefix, wake_prefixes};
use crate::chat::{ChatService, UserPart};
use crate::config::LoadedConfig;

/// A recognised command and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Sid,
    New,
    Reset,
    Provider(Option<String>),
    Model(Option<String>),
}

/// What a command needs to know about the message and its session.
pub struct Context<'a> {
    pub chat: &'a Arc<ChatService>,
    pub config: &'a Arc<LoadedConfig>,
    pub umo: &'a Umo,
    pub sender_id: &'a str,
    pub is_admin: bool,
    pub is_group: bool,
}

const ADMINS_ONLY: &str = "Only admins (admins_id in the config) can do that.";

/// The command a woken message's text starts with, if any.
pub fn parse(text: &str) -> Option<Command> {
    let mut words = text.split_whitespace();
    let name = words.next()?.to_lowercase();
    let argument = words.next().map(str::to_owned);
    match name.as_str() {
        "help" => Some(Command::Help),
        "sid" => Some(Command::Sid),
        "new" => Some(Command::New),
        "reset" => Some(Command::Reset),
        "provider" => Some(Command::Provider(argument)),
        "model" => Some(Command::Model(argument)),
        _ => None,
    }
}

/// The command a webchat message (from the developer API or the
/// dashboard) gives: text alone, starting with one of the config's wake
/// prefixes (`/` unless set otherwise), as on the platforms.
pub fn webchat_command(config: &LoadedConfig, parts: &[UserPart]) -> Option<Command> {
    // One text part is the usual message, read in place.
    let text = match parts {
        [UserPart::Plain { text }] => Cow::Borrowed(text.as_str()),
        _ => {
            let mut joined = String::new();
            for part in parts {
                let UserPart::Plain { text } = part else {
                    return None;
                };
                joined.push_str(text);
            }
            Cow::Owned(joined)
        }
    };
    strip_wake_prefix(config, text.trim_start()).and_then(parse)
}

/// Runs a command and returns the reply text.
pub async fn run(command: Command, context: Context<'_>) -> String {
    let umo = context.umo.to_string();
    match command {
        Command::Help => help_text(context.config),
        Command::Sid => format!(
            "UMO: {umo}\nSender ID: {}\nUse the UMO with POST /api/v1/im/message to send to this chat.",
            context.sender_id
        ),
        Command::New => match context.chat.new_conversation(&umo).await {
            Ok(_) => "Started a new conversation.".to_owned(),
            Err(error) => failed("start a new conversation", error),
        },
        Command::Reset if context.is_group && !context.is_admin => ADMINS_ONLY.to_owned(),
        Command::Reset => match context.chat.reset_conversation(&umo).await {
            Ok(()) => "The conversation was reset.".to_owned(),
            Err(error) => failed("reset the conversation", error),
        },
        Command::Provider(None) => list_providers(&context, &umo).await,
        Command::Provider(Some(_)) if !context.is_admin => ADMINS_ONLY.to_owned(),
        Command::Provider(Some(choice)) => switch_provider(&context, &umo, &choice).await,
        Command::Model(None) => {
            let provider = context
                .chat
                .resolve_provider(context.config, &umo, None)
                .await;
            let model = match context.chat.session_model(&umo).await {
                Some(model) => model,
                None => provider.map(|p| p.model().to_owned()).unwrap_or_default(),
            };
            if model.is_empty() {
                "No model: no chat provider is configured.".to_owned()
            } else {
                format!("Model: {model}")
            }
        }
        Command::Model(Some(_)) if !context.is_admin => ADMINS_ONLY.to_owned(),
        Command::Model(Some(model)) => match context.chat.set_session_model(&umo, &model).await {
            Ok(()) => format!("This chat now uses the model {model}."),
            Err(error) => failed("switch the model", error),
        },
    }
}

/// The wake prefix commands are shown with: the config's first.
fn first_prefix(config: &LoadedConfig) -> &str {
    wake_prefixes(config).next().unwrap_or_default()
}

/// The command list, written with the config's first wake prefix.
fn help_text(config: &LoadedConfig) -> String {
    let prefix = first_prefix(config);
    let commands = [
        ("help", "this list"),
        ("sid", "this chat's UMO, for the developer API"),
        ("new", "start a new conversation"),
        ("reset", "forget the current conversation"),
        ("provider [n|id]", "list or switch the chat provider"),
        ("model [name]", "show or switch the model"),
    ];
    let mut lines = vec!["Commands:".to_owned()];
    lines.extend(
        commands
            .iter()
            .map(|(command, what)| format!("{prefix}{command}  {what}")),
    );
    lines.join("\n")
}

async fn list_providers(context: &Context<'_>, umo: &str) -> String {
    let ids = context.chat.providers().for_config(context.config).ids();
    if ids.is_empty() {
        return "No chat provider is configured.".to_owned();
    }
    let current = context
        .chat
        .resolve_provider(context.config, umo, None)
        .await
        .map(|p| p.id().to_owned());
    let mut lines = vec!["Chat providers:".to_owned()];
    for (index, id) in ids.iter().enumerate() {
        let marker = if current.as_deref() == Some(id) {
            " (current)"
        } else {
            ""
        };
        lines.push(format!("{}. {id}{marker}", index + 1));
    }
    let prefix = first_prefix(context.config);
    lines.push(format!("Switch with {prefix}provider <number or id>."));
    lines.join("\n")
}

async fn switch_provider(context: &Context<'_>, umo: &str, choice: &str) -> String {
    let ids = context.chat.providers().for_config(context.config).ids();
    let chosen = choice
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|index| ids.get(index))
        .or_else(|| ids.iter().find(|id| *id == choice));
    let Some(id) = chosen else {
        let prefix = first_prefix(context.config);
        return format!("No chat provider {choice}; {prefix}provider lists them.");
    };
    match context.chat.set_session_provider(umo, id).await {
        Ok(()) => format!("This chat now uses the provider {id}."),
        Err(error) => failed("switch the provider", error),
    }
}

fn failed(what: &str, error: astrbot_core::StoreError) -> String {
    tracing::error!(%error, "could not {what}");
    format!("Could not {what}; see the server log.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_first_word() {
        assert_eq!(parse("sid"), Some(Command::Sid));
        assert_eq!(parse("  HELP me"), Some(Command::Help));
        assert_eq!(
            parse("provider 2"),
            Some(Command::Provider(Some("2".into())))
        );
        assert_eq!(parse("model"), Some(Command::Model(None)));
        assert_eq!(parse("what is new"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn webchat_commands_are_text_after_a_wake_prefix() {
        let default = LoadedConfig::new("d", "d", serde_json::json!({}));
        let hash = LoadedConfig::new("h", "h", serde_json::json!({"wake_prefix": ["#"]}));
        let text = |text: &str| vec![UserPart::Plain { text: text.into() }];
        let command =
            |config: &LoadedConfig, message: &str| webchat_command(config, &text(message));

        assert_eq!(command(&default, "/reset"), Some(Command::Reset));
        assert_eq!(command(&default, " /new please"), Some(Command::New));
        assert_eq!(command(&default, "reset"), None);
        assert_eq!(command(&default, "/unknown"), None);
        assert_eq!(command(&default, "/"), None);
        assert_eq!(command(&hash, "#help"), Some(Command::Help));
        assert_eq!(command(&hash, "/help"), None);

        assert!(
            help_text(&hash).contains("\n#reset  "),
            "{}",
            help_text(&hash)
        );
        assert!(help_text(&default).contains("\n/reset  "));
    }
}
