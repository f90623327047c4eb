//! Dashboard variables at request time: which dashboard's declarations apply to a panel, the
//! values the request picks (`var-<name>`, else the default, else the first option), each checked
//! against the variable's options, and the bound parameters the panel's SQL reads (`$name`; a
//! multi variable binds a list, expanded inside `IN (…)` by the query layer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::Array;
use datafusion::common::ScalarValue;

use super::{PanelError, PanelRequest};
use crate::config::{LoadedDashboard, LoadedPanel, TenantPanels, Variable, mentions};
use crate::query::{Params, QueryEngine};
use crate::storage::TenantStore;

/// How long a `query:` variable's options are reused.
const OPTIONS_TTL: Duration = Duration::from_secs(30);
/// Most options one variable offers (a query returning more is cut here, in its order).
pub const MAX_OPTIONS: usize = 1_000;

/// Options of `query:` variables, per tenant, configuration generation, dashboard and name.
pub struct OptionsCache(moka::sync::Cache<(String, u64, String, String), Arc<Vec<String>>>);

impl Default for OptionsCache {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(OPTIONS_TTL)
                .build(),
        )
    }
}

/// What a variable offers and what the request picked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Picked {
    pub name: String,
    pub label: String,
    pub multi: bool,
    pub options: Vec<String>,
    pub values: Vec<String>,
}

/// Where one request's variables come from.
pub struct Scope<'a> {
    pub engine: &'a QueryEngine,
    pub store: &'a Arc<TenantStore>,
    pub config: &'a TenantPanels,
    pub generation: u64,
    pub options: &'a OptionsCache,
}

impl Scope<'_> {
    /// The parameters `panel` reads for `request`: each variable it mentions, from the
    /// dashboard the request names (`dashboard=`) or else the first dashboard placing it.
    pub async fn bind(
        &self,
        panel: &LoadedPanel,
        request: &PanelRequest,
    ) -> Result<Params, PanelError> {
        let mut params = Params::new();
        let Some(board) = self.dashboard_for(panel, request)? else {
            return Ok(params);
        };
        let text = panel_text(panel);
        for variable in &board.config.variables {
            if !mentions(&text, &variable.name) {
                continue;
            }
            let picked = self.pick(board, variable, request).await?;
            let value = if variable.multi {
                ScalarValue::List(ScalarValue::new_list_nullable(
                    &picked
                        .values
                        .iter()
                        .map(|v| ScalarValue::Utf8(Some(v.clone())))
                        .collect::<Vec<_>>(),
                    &arrow::datatypes::DataType::Utf8,
                ))
            } else {
                ScalarValue::Utf8(picked.values.first().cloned())
            };
            params.insert(variable.name.clone(), value);
        }
        Ok(params)
    }

    /// Every variable of `board` with its options and the values `request` picks (the page's
    /// selectors).
    pub async fn all(
        &self,
        board: &LoadedDashboard,
        request: &PanelRequest,
    ) -> Result<Vec<Picked>, PanelError> {
        let mut out = vec![];
        for variable in &board.config.variables {
            out.push(self.pick(board, variable, request).await?);
        }
        Ok(out)
    }

    fn dashboard_for<'c>(
        &'c self,
        panel: &LoadedPanel,
        request: &PanelRequest,
    ) -> Result<Option<&'c LoadedDashboard>, PanelError> {
        let places =
            |d: &&LoadedDashboard| d.config.panels.iter().any(|e| e.panel_id() == panel.id);
        if let Some(name) = &request.dashboard {
            return match self.config.dashboards.get(name) {
                Some(board) if places(&board) => Ok(Some(board)),
                _ => Err(PanelError::Param(super::ParamError {
                    param: "dashboard",
                    message: format!("dashboard `{name}` does not place panel `{}`", panel.id),
                })),
            };
        }
        Ok(self
            .config
            .dashboards
            .values()
            .find(|d| places(d) && !d.config.variables.is_empty()))
    }

    async fn pick(
        &self,
        board: &LoadedDashboard,
        variable: &Variable,
        request: &PanelRequest,
    ) -> Result<Picked, PanelError> {
        let options = self.options(board, variable).await?;
        let refuse = |message: String| PanelError::Variable {
            variable: variable.name.clone(),
            message,
        };
        let asked = request.vars.get(&variable.name).filter(|v| !v.is_empty());
        let values = match asked {
            Some(values) => values.clone(),
            None if !variable.defaults().is_empty() => variable.defaults(),
            None => options.first().cloned().into_iter().collect(),
        };
        if !variable.multi && values.len() > 1 {
            return Err(refuse("takes one value".into()));
        }
        if let Some(bad) = values.iter().find(|v| !options.contains(v)) {
            return Err(refuse(format!("{bad:?} is not one of its options")));
        }
        Ok(Picked {
            name: variable.name.clone(),
            label: variable.label().to_string(),
            multi: variable.multi,
            options: options.to_vec(),
            values,
        })
    }

    async fn options(
        &self,
        board: &LoadedDashboard,
        variable: &Variable,
    ) -> Result<Arc<Vec<String>>, PanelError> {
        if let Some(values) = &variable.values {
            return Ok(Arc::new(values.clone()));
        }
        let Some(sql) = &variable.query else {
            return Ok(Arc::new(vec![]));
        };
        let key = (
            self.config.tenant.clone(),
            self.generation,
            board.name.clone(),
            variable.name.clone(),
        );
        if let Some(hit) = self.options.0.get(&key) {
            return Ok(hit);
        }
        let batches = self
            .engine
            .collect(self.store, sql)
            .await
            .map_err(|source| PanelError::Query {
                panel: format!("{}: variable {}", board.name, variable.name),
                source,
            })?;
        let mut options = vec![];
        for batch in &batches {
            let Some(column) = batch.columns().first() else {
                continue;
            };
            for row in 0..batch.num_rows() {
                if options.len() < MAX_OPTIONS && !column.is_null(row) {
                    let text =
                        arrow::util::display::array_value_to_string(column, row).map_err(|e| {
                            PanelError::Shape {
                                panel: board.name.clone(),
                                message: e.to_string(),
                            }
                        })?;
                    options.push(text);
                }
            }
        }
        let options = Arc::new(options);
        self.options.0.insert(key, options.clone());
        Ok(options)
    }
}

/// Each bound variable's value(s) as shown to people, joined by `, `.
pub fn shown(vars: &Params) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(name, value)| {
            let text = match value {
                ScalarValue::Utf8(Some(v)) => v.clone(),
                ScalarValue::List(list) => {
                    let values = list.value(0);
                    (0..values.len())
                        .filter_map(|i| {
                            arrow::util::display::array_value_to_string(&values, i).ok()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// The picked values of a page's variables as shown to people.
pub fn shown_picked(picked: &[Picked]) -> BTreeMap<String, String> {
    picked
        .iter()
        .map(|p| (p.name.clone(), p.values.join(", ")))
        .collect()
}

/// `text` with each `$name` of `shown` replaced by its value; `$name_more` is another name and
/// stays, and a value is never scanned again (it may hold `$` itself).
pub fn substitute(text: &str, shown: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        match shown.get(&after[..len]) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Everything of a panel that may read `$name`: its SQL, `where:`, title and template.
fn panel_text(panel: &LoadedPanel) -> String {
    let c = &panel.config;
    [
        c.sql.as_deref(),
        c.clauses().and_then(|q| q.where_clause.as_deref()),
        Some(c.title.as_str()),
        c.template.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_whole_names_once() {
        let shown = BTreeMap::from([
            ("vm".to_string(), "$vm_name".to_string()),
            ("region".to_string(), "eu, us".to_string()),
        ]);
        assert_eq!(
            substitute("CPU of $vm ($vm_name) in $region; $5 $", &shown),
            "CPU of $vm_name ($vm_name) in eu, us; $5 $"
        );
    }
}
