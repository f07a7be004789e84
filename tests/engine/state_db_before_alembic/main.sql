-- The state database as the last sharelift before migrations (main at 3cac766) created it:
-- metadata.create_all, flow-control tables on first use. The same DDL on SQLite and on PostgreSQL.
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
    etag VARCHAR(80),
    PRIMARY KEY (job, run_id, path)
);
CREATE INDEX ix_outcomes_status ON sharelift_file_outcomes (job, run_id, status);
CREATE TABLE sharelift_flow_control (
    job VARCHAR(63) NOT NULL,
    rules TEXT NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (job)
);
CREATE TABLE sharelift_flow_leases (
    holder VARCHAR(64) NOT NULL,
    job VARCHAR(63) NOT NULL,
    run_id VARCHAR(250),
    subtask INTEGER,
    worker VARCHAR(255),
    beat BIGINT NOT NULL,
    rate FLOAT,
    started_at FLOAT,
    last_seen FLOAT,
    PRIMARY KEY (holder)
);
CREATE INDEX ix_sharelift_flow_leases_job ON sharelift_flow_leases (job);
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
    run_number INTEGER,
    retry_of VARCHAR(250),
    spec TEXT,
    PRIMARY KEY (job, run_id)
);
