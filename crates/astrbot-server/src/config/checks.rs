//! What a config document is checked for before it is used, at start,
//! on SIGHUP and on every save: sections of the right type, whole-number
//! settings in range, and an admin name the dashboard's chat can use.

use serde_json::Value;

use super::model::whole_number;
use super::DEFAULT_CONFIG_ID;

/// Sections that must be objects, and lists that must be arrays, when
/// present. A `"dashboard": null` would otherwise silently drop the admin
/// password and the JWT secret.
const OBJECT_SECTIONS: [&str; 4] = [
    "dashboard",
    "provider_settings",
    "platform_settings",
    "astrbot_rs",
];
const ARRAY_SECTIONS: [&str; 5] = [
    "provider_sources",
    "provider",
    "platform",
    "persona",
    "admins_id",
];

/// Settings that must be whole numbers in a range when present, with the
/// name an admin reads in the error and whether only the default config's
/// copy is read (the `dashboard` section, and the upload limit, are the
/// server's; every config's providers take its own provider timeout). Any
/// other value used to fall back to the default without a word:
/// `"max_upload_mb": 0.5` allowed 128 MiB.
const WHOLE_NUMBER_SETTINGS: [WholeNumberSetting; 3] = [
    WholeNumberSetting {
        pointer: "/astrbot_rs/max_upload_mb",
        range: (1, 1 << 20),
        default_only: true,
    },
    WholeNumberSetting {
        pointer: "/astrbot_rs/provider_timeout_seconds",
        range: (1, 1 << 31),
        default_only: false,
    },
    // 0 asks the system for a free port, as `DASHBOARD_PORT=0` does.
    WholeNumberSetting {
        pointer: "/dashboard/port",
        range: (0, 65_535),
        default_only: true,
    },
];

struct WholeNumberSetting {
    pointer: &'static str,
    range: (u64, u64),
    default_only: bool,
}

/// Checks the settings of [`WHOLE_NUMBER_SETTINGS`] that `config_id` reads.
fn check_whole_numbers(document: &Value, config_id: &str) -> Result<(), String> {
    let is_default = config_id == DEFAULT_CONFIG_ID;
    for setting in WHOLE_NUMBER_SETTINGS {
        if setting.default_only && !is_default {
            continue;
        }
        let Some(value) = document.pointer(setting.pointer) else {
            continue;
        };
        let (least, most) = setting.range;
        if !whole_number(value).is_some_and(|number| (least..=most).contains(&number)) {
            let name = setting.pointer[1..].replace('/', ".");
            return Err(format!(
                "`{name}` must be a whole number from {least} to {most}, not {value}"
            ));
        }
    }
    Ok(())
}

/// Everything a config document is checked for before it is used: its
/// sections' types, the whole-number settings config `config_id` reads,
/// and (in the default config) the admin's name.
pub(super) fn check_config(document: &Value, config_id: &str) -> Result<(), String> {
    check_sections(document)?;
    check_whole_numbers(document, config_id)?;
    if config_id == DEFAULT_CONFIG_ID {
        check_admin_name(document)?;
    }
    Ok(())
}

/// The admin's name is the dashboard chat's user name, which may not hold
/// `!` (see the chat's `username` check); the account page refuses such a
/// name, and so does the file or a save, instead of a chat refusing the
/// admin later.
fn check_admin_name(document: &Value) -> Result<(), String> {
    let name = document
        .pointer("/dashboard/username")
        .and_then(Value::as_str);
    if name.is_some_and(|name| name.contains('!')) {
        return Err("`dashboard.username` must not contain '!'".to_owned());
    }
    Ok(())
}

fn check_sections(document: &Value) -> Result<(), String> {
    for key in OBJECT_SECTIONS {
        if document.get(key).is_some_and(|value| !value.is_object()) {
            return Err(format!("`{key}` must be an object"));
        }
    }
    for key in ARRAY_SECTIONS {
        if document.get(key).is_some_and(|value| !value.is_array()) {
            return Err(format!("`{key}` must be a list"));
        }
    }
    Ok(())
}
