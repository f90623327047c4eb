//! `opsboard validate [PATH...]`: checks whole configuration trees the way the server loads
//! them. A path may be a repository root (with `config/`, `tenants/`, `panels/`), a tenants
//! folder, one tenant's folder, or a single YAML file inside any of those.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::tenant::{check_shared_panels, load_tenant};
use crate::config::{
    AggregationRules, ConfigDirs, Functions, KnownTables, Problem, ServerConfig, has_dashboards,
    tenant_folders,
};

/// What to check, worked out from the paths given.
#[derive(Debug, Default)]
struct Plan {
    server_configs: BTreeSet<PathBuf>,
    /// (tenants dir, shared panels dir, tenant) triples.
    tenants: BTreeSet<(PathBuf, PathBuf, String)>,
    shared_panel_dirs: BTreeSet<(PathBuf, PathBuf)>,
}

/// Every problem under `paths`, sorted, with the number of tenants checked.
pub fn validate_paths(paths: &[PathBuf], functions: Functions<'_>) -> (usize, Vec<Problem>) {
    let mut plan = Plan::default();
    for path in paths {
        plan_path(path, &mut plan);
    }
    let mut problems = vec![];
    let mut aggregation = AggregationRules::default();
    for file in &plan.server_configs {
        match ServerConfig::load(file, true) {
            Ok(config) => aggregation = config.aggregation,
            Err(e) => problems.push(e.into()),
        }
    }
    for (tenants_dir, panels_dir) in &plan.shared_panel_dirs {
        let dirs = ConfigDirs {
            tenants_dir: tenants_dir.clone(),
            panels_dir: panels_dir.clone(),
        };
        problems.extend(check_shared_panels(&dirs, functions));
    }
    for (tenants_dir, panels_dir, tenant) in &plan.tenants {
        let dirs = ConfigDirs {
            tenants_dir: tenants_dir.clone(),
            panels_dir: panels_dir.clone(),
        };
        if let Err(found) = load_tenant(&dirs, tenant, &aggregation, &KnownTables::new(), functions)
        {
            problems.extend(found);
        }
    }
    problems.sort();
    problems.dedup();
    (plan.tenants.len(), problems)
}

fn plan_path(path: &Path, plan: &mut Plan) {
    if path.is_file() {
        if path.file_name().is_some_and(|n| n == "opsboard.yaml") {
            plan.server_configs.insert(path.to_path_buf());
            return;
        }
        // A file inside a tenant (tenants/<t>/...), else inside the shared panels folder.
        if let Some(tenant) = path.ancestors().skip(1).find(|a| is_tenant_dir(a)) {
            plan_tenant(tenant, plan);
        } else if let Some(panels) = path
            .ancestors()
            .skip(1)
            .find(|a| a.file_name().is_some_and(|n| n == "panels"))
        {
            let root = panels.parent().unwrap_or(Path::new(""));
            plan.shared_panel_dirs
                .insert((join(root, "tenants"), panels.to_path_buf()));
        }
        return;
    }
    if is_tenant_dir(path) {
        plan_tenant(path, plan);
        return;
    }
    let looks_like_root = ["config", "tenants", "panels"]
        .iter()
        .any(|d| join(path, d).is_dir());
    if looks_like_root && !path.ends_with("tenants") {
        let config = join(&join(path, "config"), "opsboard.yaml");
        if config.is_file() {
            plan.server_configs.insert(config);
        }
        let tenants = join(path, "tenants");
        let panels = join(path, "panels");
        plan.shared_panel_dirs
            .insert((tenants.clone(), panels.clone()));
        for tenant in configured_tenants(&tenants) {
            plan.tenants
                .insert((tenants.clone(), panels.clone(), tenant));
        }
        return;
    }
    if path.file_name().is_some_and(|n| n == "config") {
        let config = join(path, "opsboard.yaml");
        if config.is_file() {
            plan.server_configs.insert(config);
        }
        return;
    }
    // A tenants folder: shared panels sit beside it.
    let panels = join(path.parent().unwrap_or(Path::new("")), "panels");
    for tenant in configured_tenants(path) {
        plan.tenants
            .insert((path.to_path_buf(), panels.clone(), tenant));
    }
}

fn plan_tenant(dir: &Path, plan: &mut Plan) {
    let tenants = dir.parent().unwrap_or(Path::new("")).to_path_buf();
    let panels = join(tenants.parent().unwrap_or(Path::new("")), "panels");
    if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
        plan.tenants.insert((tenants, panels, name.to_string()));
    }
}

fn is_tenant_dir(dir: &Path) -> bool {
    has_dashboards(dir)
}

/// The tenants of a tenants folder that have dashboards configuration to check.
fn configured_tenants(tenants_dir: &Path) -> Vec<String> {
    tenant_folders(tenants_dir)
        .into_iter()
        .filter(|name| has_dashboards(&tenants_dir.join(name)))
        .collect()
}

/// `base/name`, without a leading `./` when base is the current directory.
fn join(base: &Path, name: &str) -> PathBuf {
    if base.as_os_str().is_empty() || base == Path::new(".") {
        PathBuf::from(name)
    } else {
        base.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::damage::{Edit, damage};
    use proptest::prelude::*;

    /// The characters YAML gives meaning to.
    const SIGNIFICANT: &[u8] = b" :-\n\t'\"{}[]#&*!|>%@`,?$";
    /// The validation corpus' clean tree (tests/validate/base).
    const BASE: [&str; 3] = [
        "tenants/t/tenant.yaml",
        "tenants/t/dashboards/default.yaml",
        "tenants/t/panels/good.yaml",
    ];

    fn check(file: usize, edits: &[Edit]) -> Result<(), TestCaseError> {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate/base");
        let dir = tempfile::tempdir().unwrap();
        for name in BASE {
            let to = dir.path().join(name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(base.join(name), &to).unwrap();
        }
        let target = dir.path().join(BASE[file]);
        let text = std::fs::read(&target).unwrap();
        std::fs::write(&target, damage(&text, edits, SIGNIFICANT)).unwrap();
        let registry = crate::panels::Registry::builtin();
        let functions = Functions {
            image: &registry.image_names(),
            data: &registry.data_names(),
        };
        let (_, problems) = validate_paths(&[dir.path().to_path_buf()], functions);
        for p in &problems {
            prop_assert!(p.file.starts_with(dir.path()), "{p}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // `PROPTEST_CASES` raises this for long runs outside CI (benches/fuzz.sh).
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            ..ProptestConfig::default()
        })]

        /// Damaged YAML never panics the loader; every problem names a file of the checked tree.
        #[test]
        fn damaged_yaml_is_reported_never_a_panic(
            file in 0usize..3,
            edits in proptest::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..8),
        ) {
            check(file, &edits)?;
        }
    }
}
