-- A call to a model with no known price has no cost (NULL), not a cost of 0: reports show it
-- as unpriced. Calls recorded before this with tokens and a cost of 0 were such calls.
CREATE TABLE usage_records_new (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id           TEXT NOT NULL REFERENCES instances(id),
    message_id            TEXT REFERENCES messages(id),
    source_id             TEXT NOT NULL,          -- the model response id: one row per model call
    model                 TEXT NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cost_micros           INTEGER,                -- NULL: the model has no price
    created_at            TEXT NOT NULL,
    UNIQUE (instance_id, source_id)
);
INSERT INTO usage_records_new
SELECT id, instance_id, message_id, source_id, model, input_tokens, output_tokens,
       cache_creation_tokens, cache_read_tokens,
       CASE WHEN cost_micros = 0
                 AND input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens > 0
            THEN NULL ELSE cost_micros END,
       created_at
FROM usage_records;
DROP TABLE usage_records;
ALTER TABLE usage_records_new RENAME TO usage_records;
CREATE INDEX usage_records_instance ON usage_records(instance_id);
