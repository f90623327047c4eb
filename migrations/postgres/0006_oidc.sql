-- OpenID Connect sign-in. A user signing in through a provider is found by the provider's
-- issuer and their subject there, never by email alone.
CREATE TABLE user_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities(user_id);

-- Sign-ins under way: the state handed to the provider (only its hash), the nonce and PKCE
-- verifier that go with it (sealed), and where to land afterwards. In the database so the
-- callback may reach another node than the start did; used once, for 10 minutes.
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    sealed TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The provider a session signed in through, for RP-initiated logout.
ALTER TABLE sessions ADD COLUMN oidc_provider TEXT;
