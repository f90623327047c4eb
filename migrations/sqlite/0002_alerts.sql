-- Alert state: one row per (tenant, rule, label set), so a restart resumes where it stopped;
-- silences; acknowledgements live on the instance; the delivery log; in-app notifications.
CREATE TABLE alert_instances (
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    since INTEGER NOT NULL,
    last_eval INTEGER NOT NULL,
    value REAL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    fired_at INTEGER,
    last_notified INTEGER,
    acked_by TEXT,
    acked_at INTEGER,
    PRIMARY KEY (tenant, rule, labels)
);

CREATE TABLE alert_silences (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX alert_silences_tenant ON alert_silences(tenant, ends_at);

CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at INTEGER NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX alert_deliveries_tenant ON alert_deliveries(tenant, at);

CREATE TABLE alert_notifications (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at INTEGER NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX alert_notifications_tenant ON alert_notifications(tenant, at);
