//! Evaluating event rules: the newest matching rows since the rule's book says, judged
//! ([`super::events`]), the book stored before anyone is told (so a crash loses a notice rather
//! than repeating one), every judged row written to the `alerts` table (`event`, `throttled`,
//! `capped`, `silenced`), and the notices built with the event's thumbnail and link.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use serde_json::{Value, json};

use super::AlertError;
use super::events::{EventBook, EventRow, Verdict};
use super::history::HistoryRow;
use super::routing::{EventNotice, Outgoing};
use super::rule_text::{rule_annotations, rule_message, sent_labels};
use super::state::{Change, Labels};
use super::store::{AlertStore, Silence};
use crate::config::{AlertRule, EventWatch};
use crate::panels::values;
use crate::query::QueryEngine;
use crate::storage::{Store, TenantStore};

/// Around an event, what its link shows of the panel.
const LINK_MARGIN_MS: i64 = 5 * 60_000;

pub struct EventRules {
    store: AlertStore,
    tenants: Arc<Store>,
    query: Arc<QueryEngine>,
    /// This server's address: notices' links in annotations are absolute.
    external_url: String,
    /// Each rule's book as last stored (the database is read once per rule after a start).
    books: parking_lot::Mutex<HashMap<(String, String), EventBook>>,
}

/// One evaluation's outcome: rows for the `alerts` table, notices for the routes.
pub struct Judged {
    pub history: Vec<HistoryRow>,
    pub outgoing: Vec<Outgoing>,
}

impl EventRules {
    pub fn new(
        store: AlertStore,
        tenants: Arc<Store>,
        query: Arc<QueryEngine>,
        external_url: String,
    ) -> Self {
        Self {
            store,
            tenants,
            query,
            external_url,
            books: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub async fn evaluate(
        &self,
        tenant: &str,
        rule: &AlertRule,
        watch: &EventWatch,
        silences: &[Silence],
        now: i64,
    ) -> Result<Judged, AlertError> {
        let name = &rule.config.name;
        let key = (tenant.to_string(), name.clone());
        let cached = self.books.lock().remove(&key);
        let (mut book, is_new) = match cached {
            Some(book) => (book, false),
            None => match self.store.event_book(tenant, name).await? {
                Some(book) => (book, false),
                None => (EventBook::new(now), true),
            },
        };
        let store = self.tenants.tenant(tenant).await?;
        let rows = if store.table(&watch.table).is_some() {
            self.rows(&store, watch, book.from_ms(watch, now)).await?
        } else {
            vec![]
        };
        let silenced = |labels: &Labels| silences.iter().any(|s| s.covers(name, labels, now));
        let judged = book.judge(rows, watch, silenced, now);
        if is_new || !judged.is_empty() {
            self.store.save_event_book(tenant, name, &book).await?;
        }
        self.books.lock().insert(key, book);
        let mut out = Judged {
            history: Vec::with_capacity(judged.len()),
            outgoing: vec![],
        };
        for (row, verdict) in judged {
            let mut labels = row.labels.clone();
            labels.insert("event".into(), row.key[..12].to_string());
            let message = notice_text(rule, watch, &row, verdict);
            if let Some(Verdict::Send { .. }) = verdict {
                let notice = self.notice(&store, tenant, watch, &row).await;
                let mut o = outgoing(rule, &labels, &message, &row, notice, now);
                self.absolute_links(tenant, &mut o);
                out.outgoing.push(o);
            }
            out.history.push(HistoryRow {
                state: verdict.map_or("silenced", Verdict::state),
                labels,
                message,
                value: row.row.get("value").and_then(Value::as_f64),
            });
        }
        Ok(out)
    }

    async fn rows(
        &self,
        store: &Arc<TenantStore>,
        watch: &EventWatch,
        from_ms: i64,
    ) -> Result<Vec<EventRow>, AlertError> {
        let mut params = crate::query::Params::new();
        let from = ScalarValue::TimestampNanosecond(Some(from_ms * 1_000_000), None);
        params.insert("from".into(), from);
        let batches = self
            .query
            .collect_with_params(store, &watch.sql, &params)
            .await
            .map_err(|e| AlertError::Invalid(format!("event query: {e}")))?;
        let columns = values::column_names(&batches);
        Ok(values::json_rows(&batches)
            .into_iter()
            .filter_map(|cells| {
                let row = columns.iter().cloned().zip(cells).collect();
                EventRow::new(row, &watch.labels, watch.attachment.as_deref())
            })
            .collect())
    }

    /// The picture and link of a notice. A picture that cannot be had (missing, unreadable)
    /// leaves the notice without it: the event still goes out.
    async fn notice(
        &self,
        store: &TenantStore,
        tenant: &str,
        watch: &EventWatch,
        row: &EventRow,
    ) -> EventNotice {
        let attachment = row.attachment.clone();
        let mut thumbnail = None;
        if let Some(id) = &attachment {
            match store.attachment(id).await {
                Ok(Some(info)) => match crate::panels::thumbnail(store, &info).await {
                    Ok(t) => thumbnail = t,
                    Err(e) => {
                        tracing::warn!(%tenant, %id, error = %e, "event notice without its thumbnail")
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%tenant, %id, error = %e, "event notice without its picture")
                }
            }
        }
        let link = match (&watch.panel, &attachment) {
            (Some(panel), _) => format!(
                "/t/{tenant}/p/{panel}?from={}&to={}",
                row.time_ms - LINK_MARGIN_MS,
                row.time_ms + LINK_MARGIN_MS
            ),
            (None, Some(id)) => format!("/api/v1/tenants/{tenant}/attachments/{id}"),
            (None, None) => format!("/t/{tenant}/alerts"),
        };
        EventNotice {
            attachment,
            thumbnail,
            link,
        }
    }
}

impl EventRules {
    /// Webhook receivers get the notice's links whole: the event's page and its picture.
    fn absolute_links(&self, tenant: &str, o: &mut Outgoing) {
        let Some(notice) = &o.event else {
            return;
        };
        let base = &self.external_url;
        o.annotations
            .insert("link".into(), format!("{base}{}", notice.link));
        if let Some(id) = &notice.attachment {
            let url = format!("{base}/api/v1/tenants/{tenant}/attachments/{id}");
            o.annotations
                .insert("thumbnail_url".into(), format!("{url}?thumbnail=1"));
            o.annotations.insert("attachment_url".into(), url);
        }
    }
}

/// The rule's message for the row, with what the throttle held back and the cap.
fn notice_text(
    rule: &AlertRule,
    watch: &EventWatch,
    row: &EventRow,
    verdict: Option<Verdict>,
) -> String {
    let mut context = row.row.clone();
    context.insert("labels".into(), json!(row.labels));
    let mut text = rule_message(rule, context, || format!("{} event", rule.config.name));
    if let Some(Verdict::Send {
        suppressed,
        cap_reached,
    }) = verdict
    {
        if suppressed > 0 {
            let s = if suppressed == 1 { "" } else { "s" };
            text.push_str(&format!(
                " (+{suppressed} more event{s} held back by the {} throttle)",
                crate::config::HumanDuration(watch.throttle)
            ));
        }
        if cap_reached {
            text.push_str(&format!(
                " — daily cap of {} reached: no more notices from this rule today",
                watch.daily_cap.unwrap_or_default()
            ));
        }
    }
    text
}

fn outgoing(
    rule: &AlertRule,
    labels: &Labels,
    message: &str,
    row: &EventRow,
    notice: EventNotice,
    now: i64,
) -> Outgoing {
    let labels = sent_labels(rule, labels);
    let annotations = rule_annotations(rule, &Value::Object(row.row.clone()));
    Outgoing {
        rule: rule.config.name.clone(),
        severity: rule.config.severity.as_str().into(),
        labels,
        annotations,
        message: message.to_string(),
        change: Change::Firing,
        starts_at: row.time_ms.min(now),
        ends_at: None,
        value: row.row.get("value").and_then(Value::as_f64),
        panel: None,
        repeat_ms: 0,
        event: Some(notice),
    }
}
