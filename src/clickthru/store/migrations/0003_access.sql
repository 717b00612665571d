-- Who may read reports: operators see every site, customers only their own.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,         -- scrypt, with its parameters and salt
    operator      INTEGER NOT NULL,      -- 1: every site; 0: the sites in user_sites
    created_at    INTEGER NOT NULL
);

CREATE TABLE user_sites (
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    site TEXT NOT NULL REFERENCES sites(name),
    PRIMARY KEY (user, site)
) WITHOUT ROWID;

-- A signed-in browser: the cookie holds the token, this table only its hash.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,            -- what this session's forms must send back
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Read-only API keys, for scripts that fetch reports; shown once, kept as a hash.
CREATE TABLE read_keys (
    key_hash   TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
