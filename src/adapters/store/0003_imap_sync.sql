-- Migration 3: where the IMAP watcher is in each folder, and where each draft was placed.

-- The highest UID handled in a folder, under the UIDVALIDITY it belongs to. Advanced in the same
-- transaction as the verdict of the message with that UID, so a crash never skips or repeats one.
CREATE TABLE sync_state (
    mailbox      TEXT PRIMARY KEY,
    uid_validity INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);

-- The draft's UID in the server's Drafts folder once it was appended (NULL: not placed yet, so a
-- restart looks for its Message-ID there before appending again).
ALTER TABLE drafts ADD COLUMN placed_uid INTEGER;
