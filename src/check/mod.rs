//! Checks of configuration that need more than serde: operator SQL parsed and planned against
//! the tenant's tables (`query`'s guard and DataFusion), templates compiled (`render`'s
//! environment), references between files. It sits above `config`, `query` and `render` and
//! below the live configuration, which loads every tenant through [`load_tenant`]; `opsboard
//! validate` runs the same checks through [`validate_paths`].

mod actions;
mod alerts;
mod event_rule;
mod panel;
mod paths;
mod sql;
mod template;
mod tenant;

pub use crate::query::{parse_order_by, parse_where};
pub use paths::validate_paths;
pub use sql::SQL_PARAMETERS;
pub use tenant::{check_shared_panels, load_tenant};
