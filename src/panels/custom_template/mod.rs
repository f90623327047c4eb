//! `custom_template`: the panel's own minijinja template (HTML auto-escaped), filled with the
//! rows of its `sql:` (the first row's columns also as top-level names) and/or the JSON of the
//! [`DataFunction`](super::DataFunction) named in `endpoint`.
//!
//! Answer: `{panel, type, title, description, range, html}`. Export: the `sql:` rows.

use std::sync::LazyLock;

use async_trait::async_trait;
use minijinja::{Environment, Value as Jinja, context};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::answer::Header;
use super::functions::function_error;
use super::kind::{Endpoint, KindSpec, Source};
use super::kinds::{PanelAnswer, PanelKind};
use super::values::{column_names, json_rows};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::query::Params;
use crate::render::{RenderError, fragment_environment, render_fragment, render_template};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub html: String,
}

pub struct CustomTemplate;

static SPEC: KindSpec = KindSpec {
    name: "custom_template",
    source: Source::SqlOnly,
    endpoint: Endpoint::Data,
    template: true,
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for CustomTemplate {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::CustomTemplate)
    }

    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        match &run.panel.config.sql {
            Some(sql) => Ok((sql.clone(), range_params(run))),
            None => Err(PanelError::NotExportable {
                panel: run.panel.id.clone(),
                kind: SPEC.name,
            }),
        }
    }
}

fn range_params(run: &Run<'_>) -> Params {
    sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw)
}

async fn answer(run: &Run<'_>) -> Result<TemplateAnswer, PanelError> {
    let config = &run.panel.config;
    let mut context = serde_json::Map::new();
    if let Some(sql) = &config.sql {
        let batches = run.rows(sql, &range_params(run)).await?;
        let names = column_names(&batches);
        let rows: Vec<Value> = json_rows(&batches)
            .into_iter()
            .map(|row| Value::Object(names.iter().cloned().zip(row).collect()))
            .collect();
        // The first row's columns are also top-level names: `{{ total_requests }}`.
        if let Some(Value::Object(first)) = rows.first() {
            context.extend(first.clone());
        }
        context.insert("rows".into(), Value::Array(rows));
    }
    if let Some(name) = config.endpoint_name() {
        let function = run.functions.data(run, name)?;
        match function
            .data(run)
            .await
            .map_err(|m| function_error(run, m))?
        {
            Value::Object(map) => context.extend(map),
            other => {
                context.insert("data".into(), other);
            }
        }
    }
    let header = run.header();
    context.insert("parameters".into(), json!(config.parameters));
    context.insert("title".into(), json!(header.title));
    // Dashboard variables the panel reads: `{{ vars.vm }}` (several values joined by `, `).
    context.insert("vars".into(), json!(super::variables::shown(&run.vars)));
    context.insert("tenant".into(), json!(run.tenant.tenant));
    context.insert("from".into(), json!(header.range.from));
    context.insert("to".into(), json!(header.range.to));
    let template = config.template.as_deref().unwrap_or_default();
    let html = render_template(template, &Value::Object(context)).map_err(|(line, message)| {
        PanelError::Template {
            panel: run.panel.id.clone(),
            file: run.panel.file.clone(),
            line: run.panel.template_first_line + line.unwrap_or(1) - 1,
            message,
        }
    })?;
    Ok(TemplateAnswer { header, html })
}

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("custom_template.html", include_str!("fragment.html")));

impl TemplateAnswer {
    pub fn fragment(&self) -> Result<String, RenderError> {
        // Rendered by the panel's own template with auto-escaping already.
        let html = Jinja::from_safe_string(self.html.clone());
        render_fragment(&TEMPLATE, "custom_template.html", context! { html })
    }
}
