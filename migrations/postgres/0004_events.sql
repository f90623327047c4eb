-- Event rules: each rule's memory (rows seen inside its lookback, throttles, the day's count)
-- stored whole after each evaluation; in-app notices carry the event's picture and link, and
-- may be addressed to one subscriber; per-user subscriptions.
CREATE TABLE alert_event_books (
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    book TEXT NOT NULL,
    PRIMARY KEY (tenant, rule)
);

ALTER TABLE alert_notifications ADD COLUMN attachment TEXT;
ALTER TABLE alert_notifications ADD COLUMN link TEXT;
ALTER TABLE alert_notifications ADD COLUMN user_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
CREATE INDEX alert_notifications_user ON alert_notifications(user_id, at);

CREATE TABLE alert_subscriptions (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant TEXT NOT NULL,
    severities TEXT NOT NULL,
    rules TEXT NOT NULL,
    email BIGINT NOT NULL,
    in_app BIGINT NOT NULL,
    PRIMARY KEY (user_id, tenant)
);
