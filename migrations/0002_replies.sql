-- Replies an instance sends up to whoever gave it work (reply_to_caller); the recipient reads
-- them with get_pending_replies. to_instance NULL is the orchestrating session itself.
CREATE TABLE replies (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    from_instance  TEXT NOT NULL REFERENCES instances(id),
    to_instance    TEXT REFERENCES instances(id),
    correlation_id TEXT,
    content        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    read_at        TEXT
);
CREATE INDEX replies_unread ON replies(to_instance, read_at);
