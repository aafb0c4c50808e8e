-- Migration 8: several accounts share one store. Every message belongs to one account (the rows
-- from before are the single account's, "default"); its verdict, facts, drafts, outbox rows and
-- reminders belong to it through the message. A (mailbox, key) is unique within an account, and
-- so is a folder's sync position: two accounts both have an INBOX with a UID 1. Runs with foreign
-- keys off (the table rebuilds), checked before commit.

CREATE TABLE messages_new (
    id          INTEGER PRIMARY KEY,
    account     TEXT NOT NULL DEFAULT 'default',
    mailbox     TEXT NOT NULL,
    key         TEXT NOT NULL,
    message_id  TEXT,
    subject     TEXT,
    sender      TEXT,
    date        TEXT,
    seen_at     TEXT NOT NULL,
    skip_reason TEXT,
    UNIQUE (account, mailbox, key)
);
INSERT INTO messages_new (id, account, mailbox, key, message_id, subject, sender, date, seen_at,
                          skip_reason)
SELECT id, 'default', mailbox, key, message_id, subject, sender, date, seen_at, skip_reason
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_by_message_id ON messages (account, mailbox, message_id);

CREATE TABLE sync_state_new (
    account      TEXT NOT NULL DEFAULT 'default',
    mailbox      TEXT NOT NULL,
    uid_validity INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (account, mailbox)
);
INSERT INTO sync_state_new (account, mailbox, uid_validity, last_uid, updated_at)
SELECT 'default', mailbox, uid_validity, last_uid, updated_at FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_new RENAME TO sync_state;
