//! The validation corpus: each file in `tests/validate/cases/` is one broken YAML file. Its
//! header says where it goes in a copy of `tests/validate/base/` (`# target:`) and every
//! problem `opsboard validate` must print for it (`# expect:`), exactly.

mod common;

use std::path::{Path, PathBuf};

use common::copy_dir;

use opsboard::check::validate_paths;
use opsboard::config::Functions;
use opsboard::panels::Registry;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate");

fn validate(root: &Path) -> Vec<String> {
    let registry = Registry::builtin();
    let functions = Functions {
        image: &registry.image_names(),
        data: &registry.data_names(),
    };
    let (_, problems) = validate_paths(&[root.to_path_buf()], functions);
    let prefix = format!("{}/", root.display());
    problems
        .iter()
        .map(|p| p.to_string().replacen(&prefix, "", 1))
        .collect()
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(Path::new(CORPUS).join("cases"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    cases
}

#[test]
fn base_tree_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(CORPUS).join("base"), dir.path());
    assert_eq!(validate(dir.path()), Vec::<String>::new());
}

#[test]
fn every_broken_file_reports_its_exact_problems() {
    let cases = cases();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let mut failures = vec![];
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let target = text
            .lines()
            .find_map(|l| l.strip_prefix("# target: "))
            .unwrap_or_else(|| panic!("{}: no `# target:` line", case.display()));
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&Path::new(CORPUS).join("base"), dir.path());
        let target = dir.path().join(target);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &text).unwrap();
        let actual = validate(dir.path());
        if actual != expected {
            failures.push(format!(
                "{}\n  expected: {expected:#?}\n  actual:   {actual:#?}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_configuration_is_clean() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(validate(repo), Vec::<String>::new());
}

#[test]
fn a_single_file_checks_the_tenant_it_belongs_to() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(CORPUS).join("base"), dir.path());
    let panel = dir.path().join("tenants/t/panels/good.yaml");
    let text = std::fs::read_to_string(&panel)
        .unwrap()
        .replace("value: cpu", "value: cpux");
    std::fs::write(&panel, text).unwrap();
    let registry = Registry::builtin();
    let functions = Functions {
        image: &registry.image_names(),
        data: &registry.data_names(),
    };
    let (tenants, problems) = validate_paths(std::slice::from_ref(&panel), functions);
    assert_eq!(tenants, 1);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, panel);
    assert_eq!(
        problems[0].message,
        "unknown column `cpux` in table `metrics`"
    );
}
