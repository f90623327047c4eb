//! What a panel kind says of itself before any request ([`KindSpec`]: its YAML name, default
//! size, the data and keys it takes), read by the configuration checks, the grid and the
//! pages. The behaviour (`PanelKind`) and the registry are `kinds.rs`.

/// What is known of a kind before any request.
#[derive(Debug)]
pub struct KindSpec {
    /// The YAML `type:`.
    pub name: &'static str,
    /// Grid (width, height) of a panel placed without a size (seed 003's defaults).
    pub default_size: (u32, u32),
    /// What a structured `data_source` gives it; `None`: it takes no data source or `sql:`.
    pub source: Source,
    /// Columns a `sql:` query must return.
    pub sql_columns: &'static [&'static str],
    /// The `display:` keys it reads (others are refused).
    pub display_keys: &'static [&'static str],
    /// Whether `endpoint:` names a registered function, and which kind of function.
    pub endpoint: Endpoint,
    /// Takes (and needs) `template:`.
    pub template: bool,
    /// Takes `stale_after:`.
    pub stale_after: bool,
    /// Redrawn as soon as the page hears of an alert change.
    pub live: bool,
    /// Drawn as a time chart: its drill-down adds the aggregation toggle and the points.
    pub chart: bool,
}

impl KindSpec {
    /// What a kind is unless it says otherwise: no data source, no keys of its own.
    pub const PLAIN: KindSpec = KindSpec {
        name: "",
        default_size: (6, 2),
        source: Source::None,
        sql_columns: &[],
        display_keys: &[],
        endpoint: Endpoint::None,
        template: false,
        stale_after: false,
        live: false,
        chart: false,
    };
}

/// The data a kind reads.
#[derive(Debug)]
pub enum Source {
    /// No data source (images, the alerts panel).
    None,
    /// Optional data: a `sql:` query only (custom_template).
    SqlOnly,
    /// Columns by role: `columns: {value: usage, series_label: host}`.
    Roles {
        roles: &'static [&'static str],
        required: &'static [&'static str],
        /// The `value` role must be numeric.
        numeric_value: bool,
    },
    /// A list of columns to show (`columns: [{name: …}]`).
    Columns,
}

/// What `endpoint:` may name.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    None,
    /// A registered image function, required.
    Image,
    /// A registered data function, optional, instead of `sql:`.
    Data,
}
