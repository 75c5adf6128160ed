-- AstrBot 4's personas, with its names and columns. astrbot-rs reads them
-- (a chat's system prompt and opening dialogue); AstrBot's dashboard writes
-- them. `IF NOT EXISTS`, so that an AstrBot database keeps its own table.

CREATE TABLE IF NOT EXISTS personas (
    id            INTEGER PRIMARY KEY,
    persona_id    VARCHAR(255) NOT NULL,
    system_prompt TEXT         NOT NULL,
    begin_dialogs JSON,
    tools         JSON,
    skills        JSON,
    folder_id     VARCHAR(36),
    sort_order    INTEGER      NOT NULL DEFAULT 0,
    created_at    DATETIME     NOT NULL,
    updated_at    DATETIME     NOT NULL,
    CONSTRAINT uix_persona_id UNIQUE (persona_id)
);
