-- The tables astrbot-rs shares with AstrBot, with AstrBot's names and columns
-- (see the behaviour reference, section 6). `IF NOT EXISTS` everywhere so that
-- an existing AstrBot `data_v4.db` can be opened: its tables are kept as they are.
--
-- Timestamps are text in one fixed-width UTC format, `YYYY-MM-DD HH:MM:SS.ffffff`
-- (what SQLAlchemy writes for AstrBot), so text comparison and ORDER BY follow
-- time order. They are always written from Rust, hence no DEFAULTs here.

CREATE TABLE IF NOT EXISTS api_keys (
    inner_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id       VARCHAR(36)  NOT NULL,
    name         VARCHAR(255) NOT NULL,
    key_hash     VARCHAR(128) NOT NULL,
    key_prefix   VARCHAR(24)  NOT NULL,
    scopes       JSON,
    created_by   VARCHAR(255) NOT NULL,
    last_used_at DATETIME,
    expires_at   DATETIME,
    revoked_at   DATETIME,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    CONSTRAINT uix_api_key_id UNIQUE (key_id),
    CONSTRAINT uix_api_key_hash UNIQUE (key_hash)
);

CREATE TABLE IF NOT EXISTS platform_sessions (
    inner_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   VARCHAR(100) NOT NULL,
    platform_id  VARCHAR(255) NOT NULL DEFAULT 'webchat',
    creator      VARCHAR(255) NOT NULL,
    display_name VARCHAR(255),
    is_group     INTEGER NOT NULL DEFAULT 0,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    CONSTRAINT uix_platform_session_id UNIQUE (session_id)
);

CREATE TABLE IF NOT EXISTS attachments (
    inner_attachment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    attachment_id       VARCHAR(36) NOT NULL,
    path                TEXT NOT NULL,
    type                VARCHAR(16) NOT NULL,
    mime_type           VARCHAR(255) NOT NULL,
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    CONSTRAINT uix_attachment_id UNIQUE (attachment_id)
);

CREATE TABLE IF NOT EXISTS platform_message_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform_id VARCHAR(255) NOT NULL,
    user_id     VARCHAR(255) NOT NULL,
    sender_id   VARCHAR(255),
    sender_name VARCHAR(255),
    content     JSON NOT NULL,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);

CREATE TABLE IF NOT EXISTS conversations (
    inner_conversation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id       VARCHAR(36) NOT NULL,
    platform_id           VARCHAR(255) NOT NULL,
    user_id               VARCHAR(255) NOT NULL,
    content               JSON,
    title                 VARCHAR(255),
    persona_id            VARCHAR(255),
    token_usage           INTEGER NOT NULL DEFAULT 0,
    created_at            DATETIME NOT NULL,
    updated_at            DATETIME NOT NULL,
    CONSTRAINT uix_conversation_id UNIQUE (conversation_id)
);

CREATE TABLE IF NOT EXISTS preferences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    scope      VARCHAR(255) NOT NULL,
    scope_id   VARCHAR(255) NOT NULL,
    "key"      VARCHAR(255) NOT NULL,
    value      JSON NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT uix_preference_scope_key UNIQUE (scope, scope_id, "key")
);

-- Only read, to hide project sessions from the session listing as AstrBot does.
CREATE TABLE IF NOT EXISTS chatui_projects (
    inner_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  VARCHAR(36) NOT NULL,
    creator     VARCHAR(255) NOT NULL,
    emoji       VARCHAR(16) DEFAULT '📁',
    title       VARCHAR(255) NOT NULL,
    description TEXT,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL,
    CONSTRAINT uix_chatui_project_id UNIQUE (project_id)
);

CREATE TABLE IF NOT EXISTS session_project_relations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id VARCHAR(100) NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT uix_session_project_session UNIQUE (session_id)
);

-- Hot paths: session listing per creator, history per chat, conversations
-- per UMO. (key_hash is already indexed by its UNIQUE constraint.)
CREATE INDEX IF NOT EXISTS ix_platform_sessions_creator_updated
    ON platform_sessions (creator, updated_at);
CREATE INDEX IF NOT EXISTS ix_platform_message_history_chat
    ON platform_message_history (platform_id, user_id, id);
CREATE INDEX IF NOT EXISTS ix_conversations_user_id
    ON conversations (user_id);
CREATE INDEX IF NOT EXISTS ix_session_project_relations_project
    ON session_project_relations (project_id);
