//! Change detection for hot reload: a hash over every YAML file under `tenants/` and `panels/`
//! (path, size, modification time and content). Polling keeps it portable and needs no
//! watcher thread; the trees are small.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use super::ConfigDirs;

/// Changes whenever a YAML file is added, removed or edited.
pub fn fingerprint(dirs: &ConfigDirs) -> u64 {
    let mut hasher = DefaultHasher::new();
    for dir in [&dirs.tenants_dir, &dirs.panels_dir] {
        walk(dir, 0, &mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &Path, depth: usize, hasher: &mut DefaultHasher) {
    // tenants/<t>/<kind>/<file>.yaml is the deepest configuration goes.
    if depth > 3 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, depth + 1, hasher);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            path.hash(hasher);
            if let Ok(meta) = path.metadata() {
                meta.len().hash(hasher);
                meta.modified().ok().hash(hasher);
            }
            std::fs::read(&path).unwrap_or_default().hash(hasher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_edits_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = ConfigDirs {
            tenants_dir: dir.path().join("tenants"),
            panels_dir: dir.path().join("panels"),
        };
        std::fs::create_dir_all(dirs.tenants_dir.join("a/panels")).unwrap();
        let before = fingerprint(&dirs);
        std::fs::write(dirs.tenants_dir.join("a/panels/p.yaml"), "x: 1").unwrap();
        let added = fingerprint(&dirs);
        assert_ne!(before, added);
        std::fs::write(dirs.tenants_dir.join("a/panels/p.yaml"), "x: 2").unwrap();
        assert_ne!(added, fingerprint(&dirs));
        std::fs::write(dirs.tenants_dir.join("a/notes.txt"), "ignored").unwrap();
        let same = fingerprint(&dirs);
        assert_eq!(same, fingerprint(&dirs));
    }
}
