-- Migration 1: everything pushback remembers between runs.
-- Times are UTC RFC 3339 text with microseconds ("2027-03-01T09:00:00.000000Z"), so they sort as text.

-- Every message the scanner looked at, once per (mailbox, key). `key` is the IMAP UID or the
-- Maildir unique name. A message that could not be scanned keeps its reason in `skip_reason`.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    mailbox     TEXT NOT NULL,
    key         TEXT NOT NULL,
    message_id  TEXT,
    subject     TEXT,
    sender      TEXT,
    date        TEXT,  -- the Date header as sent, RFC 3339 with its own offset
    seen_at     TEXT NOT NULL,
    skip_reason TEXT,
    UNIQUE (mailbox, key)
);
-- The same Message-ID can sit in two files (a copy); lookups by it must be cheap.
CREATE INDEX messages_by_message_id ON messages (mailbox, message_id);

-- What the classifier concluded about a message.
CREATE TABLE verdicts (
    message  INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    label    TEXT NOT NULL CHECK (label IN ('procurement', 'other')),
    category TEXT NOT NULL,
    score    REAL NOT NULL,
    reasons  TEXT NOT NULL  -- JSON array of {signal, weight, matched}
);

-- What the extractor read off a message (JSON of core::model::Facts).
CREATE TABLE facts (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    facts   TEXT NOT NULL
);

-- One draft per original message, ever.
CREATE TABLE drafts (
    id          INTEGER PRIMARY KEY,
    message     INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    in_reply_to TEXT,            -- the original's Message-ID
    message_id  TEXT NOT NULL,   -- the draft's own Message-ID
    subject     TEXT NOT NULL,
    recipient   TEXT NOT NULL,   -- where the reply goes (Reply-To, else From)
    category    TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected', 'sent')),
    body        TEXT NOT NULL,   -- the rendered text the rep edits
    raw         BLOB NOT NULL,   -- the full RFC 5322 message
    original    BLOB NOT NULL,   -- the message replied to, for re-composing after an edit
    notes       TEXT NOT NULL,   -- JSON array of strings for the rep
    version     INTEGER NOT NULL DEFAULT 1,
    folder_name TEXT NOT NULL UNIQUE,  -- deterministic name in the Drafts folder
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX drafts_by_status ON drafts (status);

-- Approved drafts waiting to be sent, and the ones that were.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    draft      INTEGER NOT NULL UNIQUE REFERENCES drafts (id),
    raw        BLOB NOT NULL,
    queued_at  TEXT NOT NULL,
    sent_at    TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error TEXT      -- the server's reply to the last failed attempt
);

-- The rep's verdicts, used to train the classifier: tokens of the message and the right label.
CREATE TABLE feedback (
    id         INTEGER PRIMARY KEY,
    message    INTEGER NOT NULL REFERENCES messages (id),
    label      TEXT NOT NULL CHECK (label IN ('procurement', 'other')),
    category   TEXT NOT NULL,
    tokens     TEXT NOT NULL,  -- JSON array of strings
    created_at TEXT NOT NULL
);

-- Follow-ups and deadline reminders about a draft or a message.
CREATE TABLE reminders (
    id         INTEGER PRIMARY KEY,
    draft      INTEGER REFERENCES drafts (id),
    message    INTEGER REFERENCES messages (id),
    kind       TEXT NOT NULL,
    due_at     TEXT NOT NULL,
    fired_at   TEXT,
    created_at TEXT NOT NULL,
    CHECK (draft IS NOT NULL OR message IS NOT NULL)
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE fired_at IS NULL;
