-- Migration 7: which template, of which team pack and version, wrote each draft (NULL for drafts
-- written before), and which of our sent drafts a buyer's reply answered, so `pushback pack stats`
-- can tell which wording gets calls.
ALTER TABLE drafts ADD COLUMN template TEXT;
ALTER TABLE drafts ADD COLUMN pack_name TEXT;
ALTER TABLE drafts ADD COLUMN pack_version TEXT;
ALTER TABLE replies ADD COLUMN answered_draft INTEGER REFERENCES drafts (id);
