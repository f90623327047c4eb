//! `tenants/<t>/dashboards/<name>.yaml`: seed 003's dashboard schema. Each entry places a panel
//! on a 12-column grid; `id` names the entry and `config_file` the panel definition (its file
//! stem is the panel id). Without `config_file` the entry's `id` is the panel id. Also the
//! grid: flowing unplaced panels and checking positions, references and overlaps.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::locate::Step;
use super::problem::Report;

use super::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardFile {
    pub dashboard: DashboardConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub refresh_interval: Option<HumanDuration>,
    #[serde(default)]
    pub layout: Layout,
    /// What the viewer picks at the top of the page; panels read them as `$name`.
    #[serde(default)]
    pub variables: Vec<super::Variable>,
    #[serde(default)]
    pub panels: Vec<DashboardPanel>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(default = "default_columns")]
    pub columns: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            columns: default_columns(),
        }
    }
}

fn default_columns() -> u32 {
    12
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardPanel {
    pub id: String,
    #[serde(default)]
    pub config_file: Option<String>,
    #[serde(default)]
    pub position: Option<Position>,
}

impl DashboardPanel {
    /// The panel definition this entry shows: `config_file`'s stem, else the entry id.
    pub fn panel_id(&self) -> &str {
        match &self.config_file {
            Some(file) => {
                let name = file.rsplit('/').next().unwrap_or(file);
                name.strip_suffix(".yaml")
                    .or_else(|| name.strip_suffix(".yml"))
                    .unwrap_or(name)
            }
            None => &self.id,
        }
    }
}

/// 1-based grid position; width and height default to the panel type's size.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Position {
    #[serde(default)]
    pub row: Option<u32>,
    #[serde(default)]
    pub col: Option<u32>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// A resolved grid cell.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Placement {
    pub row: u32,
    pub col: u32,
    pub width: u32,
    pub height: u32,
}

impl Placement {
    pub fn overlaps(&self, other: &Placement) -> bool {
        self.col < other.col + other.width
            && other.col < self.col + self.width
            && self.row < other.row + other.height
            && other.row < self.row + self.height
    }
}

/// Places entries: explicit positions as given, the rest flowed left to right, top to bottom
/// into the first free cell block that fits.
pub fn place(requests: &[(Option<Position>, (u32, u32))], columns: u32) -> Vec<Placement> {
    let mut placed: Vec<Placement> = vec![];
    let mut out = Vec::with_capacity(requests.len());
    for (position, (dw, dh)) in requests {
        let width = position
            .and_then(|p| p.width)
            .unwrap_or(*dw)
            .min(columns.max(1));
        let height = position.and_then(|p| p.height).unwrap_or(*dh);
        let placement = match position.and_then(|p| p.row.zip(p.col)) {
            Some((row, col)) => Placement {
                row,
                col,
                width,
                height,
            },
            None => first_free(&placed, columns, width, height),
        };
        placed.push(placement);
        out.push(placement);
    }
    out
}

fn first_free(placed: &[Placement], columns: u32, width: u32, height: u32) -> Placement {
    let mut row = 1;
    loop {
        for col in 1..=columns.saturating_sub(width) + 1 {
            let candidate = Placement {
                row,
                col,
                width,
                height,
            };
            if !placed.iter().any(|p| p.overlaps(&candidate)) {
                return candidate;
            }
        }
        row += 1;
    }
}

/// Grid and reference checks for one dashboard. `size_of` resolves a panel id to its kind's
/// default size (None: no such panel); returns the placements for the resolved dashboard.
pub fn check_dashboard(
    dashboard: &DashboardConfig,
    size_of: &dyn Fn(&str) -> Option<(u32, u32)>,
    missing_hint: &dyn Fn(&str) -> String,
    r: &mut Report<'_>,
) -> Vec<Placement> {
    super::variables::check_variables(&dashboard.variables, r);
    let columns = dashboard.layout.columns;
    let entry = |i: usize, rest: &[&str]| -> Vec<Step> {
        let mut path = vec![
            Step::from("dashboard"),
            Step::from("panels"),
            Step::Index(i),
        ];
        path.extend(rest.iter().map(|s| Step::from(*s)));
        path
    };
    if columns == 0 || columns > 24 {
        r.at(
            &["dashboard", "layout", "columns"].map(Step::from),
            format!("`layout.columns` must be between 1 and 24, got {columns}"),
        );
    }
    let mut ids = BTreeSet::new();
    let mut requests = vec![];
    for (i, panel) in dashboard.panels.iter().enumerate() {
        if !ids.insert(panel.id.as_str()) {
            r.at(
                &entry(i, &["id"]),
                format!("panel id `{}` is used twice in this dashboard", panel.id),
            );
        }
        let size = size_of(panel.panel_id());
        if size.is_none() {
            let at = if panel.config_file.is_some() {
                "config_file"
            } else {
                "id"
            };
            r.at(&entry(i, &[at]), missing_hint(panel.panel_id()));
        }
        let size = size.unwrap_or((1, 1));
        if let Some(pos) = panel.position {
            for (key, value) in [
                ("row", pos.row),
                ("col", pos.col),
                ("width", pos.width),
                ("height", pos.height),
            ] {
                if value == Some(0) {
                    r.at(
                        &entry(i, &["position", key]),
                        format!("`{key}` starts at 1"),
                    );
                }
            }
            if pos.row.is_some() != pos.col.is_some() {
                r.at(
                    &entry(i, &["position"]),
                    "give both `row` and `col`, or neither",
                );
            }
            let width = pos.width.unwrap_or(size.0);
            if let Some(col) = pos.col.filter(|c| *c > 0)
                && col + width - 1 > columns
            {
                r.at(
                    &entry(
                        i,
                        &[
                            "position",
                            if pos.width.is_some() { "width" } else { "col" },
                        ],
                    ),
                    format!(
                        "panel `{}` spans columns {col}–{} but the grid has {columns}",
                        panel.id,
                        col + width - 1
                    ),
                );
            }
        }
        requests.push((panel.position, size));
    }
    let placements = place(&requests, columns.max(1));
    for i in 0..placements.len() {
        for j in 0..i {
            if placements[i].overlaps(&placements[j]) {
                r.at(
                    &entry(i, &["position"]),
                    format!(
                        "panel `{}` overlaps panel `{}` (row {}, col {}, {}×{})",
                        dashboard.panels[i].id,
                        dashboard.panels[j].id,
                        placements[j].row,
                        placements[j].col,
                        placements[j].width,
                        placements[j].height
                    ),
                );
                break;
            }
        }
    }
    placements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_unplaced_panels_into_free_cells() {
        let fixed = Position {
            row: Some(1),
            col: Some(1),
            width: Some(8),
            height: Some(2),
        };
        let placed = place(
            &[
                (Some(fixed), (8, 2)),
                (None, (4, 1)),
                (None, (4, 1)),
                (None, (12, 3)),
            ],
            12,
        );
        assert_eq!(
            placed[1],
            Placement {
                row: 1,
                col: 9,
                width: 4,
                height: 1
            }
        );
        assert_eq!(
            placed[2],
            Placement {
                row: 2,
                col: 9,
                width: 4,
                height: 1
            }
        );
        assert_eq!(
            placed[3],
            Placement {
                row: 3,
                col: 1,
                width: 12,
                height: 3
            }
        );
    }

    #[test]
    fn config_file_stem_is_the_panel_id() {
        let entry = DashboardPanel {
            id: "system_health".into(),
            config_file: Some("panels/health_status.yaml".into()),
            position: None,
        };
        assert_eq!(entry.panel_id(), "health_status");
    }
}
