-- The last TOTP time step a user signed in with: a code is accepted once, never replayed.
ALTER TABLE users ADD COLUMN mfa_last_step BIGINT;
