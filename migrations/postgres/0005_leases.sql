-- Tenant leases: the node that runs each tenant's alert rules and upkeep, until `expires_at`
-- (epoch ms). `epoch` grows by one each time another node takes the lease over: the fencing
-- token of the tenant's current owner.
CREATE TABLE tenant_leases (
    tenant TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
