-- The state database as sharelift's first release (commit 699093c) created it: metadata.create_all.
-- The same DDL on SQLite and on PostgreSQL. No flow-control tables yet.
CREATE TABLE sharelift_file_outcomes (
    job VARCHAR(63) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    path TEXT NOT NULL,
    object_key TEXT NOT NULL,
    subtask INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT,
    crc64 VARCHAR(20),
    reason TEXT,
    started_at FLOAT,
    finished_at FLOAT,
    verified BOOLEAN,
    PRIMARY KEY (job, run_id, path)
);
CREATE INDEX ix_outcomes_status ON sharelift_file_outcomes (job, run_id, status);
CREATE TABLE sharelift_runs (
    job VARCHAR(63) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    migration_type VARCHAR(16) NOT NULL,
    state VARCHAR(32) NOT NULL,
    started_at FLOAT,
    finished_at FLOAT,
    files_scanned BIGINT,
    bytes_scanned BIGINT,
    files_to_copy BIGINT,
    bytes_to_copy BIGINT,
    subtasks INTEGER,
    window_start_ns BIGINT,
    window_end_ns BIGINT,
    report_url TEXT,
    message TEXT,
    PRIMARY KEY (job, run_id)
);
