//! Every tenant's usage in the Prometheus text format (one family at a time, each with its
//! HELP and TYPE; names in base units, counters ending in `_total`).

use std::fmt::Write;

use super::{Counter, Ingested, Meter, QuotaKind, TenantUsage};

/// A Prometheus label value: backslash, double quote and newline escaped.
pub fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A counter family with one sample per tenant.
fn per_tenant(
    out: &mut String,
    tenants: &[std::sync::Arc<TenantUsage>],
    name: &str,
    help: &str,
    value: impl Fn(&TenantUsage) -> String,
) {
    family(out, name, "counter", help);
    for t in tenants {
        let _ = writeln!(
            out,
            "{name}{{tenant=\"{}\"}} {}",
            label_value(&t.name),
            value(t)
        );
    }
}

fn seconds(micros: u64) -> String {
    format!("{}", micros as f64 / 1e6)
}

/// One number of an [`Ingested`] (rows or bytes), for the per-table families.
type IngestedValue = fn(&Ingested) -> u64;

pub fn prometheus_text(meter: &Meter) -> String {
    let tenants = meter.tenants();
    let mut out = String::new();
    let ingestion: Vec<_> = tenants
        .iter()
        .map(|t| (label_value(&t.name), t.ingestion()))
        .collect();
    let per_table: [(&str, &str, IngestedValue); 2] = [
        (
            "opsboard_ingested_rows_total",
            "Rows written, by tenant, table and protocol.",
            |n| n.rows,
        ),
        (
            "opsboard_ingested_bytes_total",
            "Request body bytes written (a request's bytes shared among its tables by rows), by tenant, table and protocol.",
            |n| n.bytes,
        ),
    ];
    for (name, help, value) in per_table {
        family(&mut out, name, "counter", help);
        for (tenant, rows) in &ingestion {
            for ((table, protocol), n) in rows {
                let _ = writeln!(
                    out,
                    "{name}{{tenant=\"{tenant}\",table=\"{}\",protocol=\"{protocol}\"}} {}",
                    label_value(table),
                    value(n)
                );
            }
        }
    }
    let count = |c: Counter| move |t: &TenantUsage| t.get(c).to_string();
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_queries_total",
        "SQL queries run on the tenant's data (panels, alert rules, API).",
        count(Counter::Queries),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_query_wall_seconds_total",
        "Wall time of the tenant's queries, from admission to the last row.",
        |t| seconds(t.get(Counter::QueryWallMicros)),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_query_cpu_seconds_total",
        "Compute time the tenant's queries spent in their operators.",
        |t| seconds(t.get(Counter::QueryCpuMicros)),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_query_scanned_bytes_total",
        "Parquet bytes the tenant's queries read.",
        count(Counter::ScannedBytes),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_panel_renders_total",
        "Panel answers served (cached or computed).",
        count(Counter::PanelRenders),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_export_rows_total",
        "Rows sent in panel exports.",
        count(Counter::ExportRows),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_export_bytes_total",
        "Bytes sent in panel exports.",
        count(Counter::ExportBytes),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_attachment_uploaded_bytes_total",
        "Bytes of attachments uploaded.",
        count(Counter::AttachmentBytes),
    );
    per_tenant(
        &mut out,
        &tenants,
        "opsboard_api_requests_total",
        "API requests into the tenant, after their access check.",
        count(Counter::ApiRequests),
    );
    family(
        &mut out,
        "opsboard_storage_bytes",
        "gauge",
        "Bytes the tenant keeps, by kind (parquet, wal, attachments), as last measured.",
    );
    for t in &tenants {
        if let Some(stored) = t.stored() {
            let tenant = label_value(&t.name);
            for (kind, bytes) in [
                ("parquet", stored.parquet),
                ("wal", stored.wal),
                ("attachments", stored.attachments),
            ] {
                let _ = writeln!(
                    out,
                    "opsboard_storage_bytes{{tenant=\"{tenant}\",kind=\"{kind}\"}} {bytes}"
                );
            }
        }
    }
    family(
        &mut out,
        "opsboard_quota_refusals_total",
        "counter",
        "Writes and queries refused by a tenant quota, by quota.",
    );
    for t in &tenants {
        let refusals = t.refusals();
        for kind in QuotaKind::ALL {
            let n = refusals.get(&kind).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "opsboard_quota_refusals_total{{tenant=\"{}\",quota=\"{}\"}} {n}",
                label_value(&t.name),
                kind.name()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_and_its_samples() {
        let meter = Meter::default();
        let acme = meter.tenant("acme");
        acme.ingested("cpu", "line_protocol", 3, 120, 0);
        acme.add(Counter::QueryWallMicros, 1_500_000);
        acme.add(Counter::Queries, 2);
        let text = prometheus_text(&meter);
        assert!(text.contains("opsboard_ingested_rows_total{tenant=\"acme\",table=\"cpu\",protocol=\"line_protocol\"} 3\n"), "{text}");
        assert!(text.contains("opsboard_ingested_bytes_total{tenant=\"acme\",table=\"cpu\",protocol=\"line_protocol\"} 120\n"));
        assert!(text.contains("opsboard_query_wall_seconds_total{tenant=\"acme\"} 1.5\n"));
        assert!(text.contains("opsboard_queries_total{tenant=\"acme\"} 2\n"));
        assert!(
            text.contains(
                "opsboard_quota_refusals_total{tenant=\"acme\",quota=\"rows_per_day\"} 0\n"
            )
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }
}
