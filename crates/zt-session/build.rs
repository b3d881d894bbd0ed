//! Reruns the build when a migration changes, so that `embed_migrations!`
//! picks it up. The migration folders are links into the workspace's
//! `migrations/`, so each file is named, not only the folder.

use std::path::Path;

fn main() {
    for (set, backend) in [
        ("migrations", "postgres"),
        ("migrations", "sqlite"),
        ("registry-migrations", "postgres"),
        ("registry-migrations", "sqlite"),
    ] {
        let dir = Path::new(set).join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for migration in entries.flatten() {
            println!("cargo:rerun-if-changed={}", migration.path().display());
            for file in ["up.sql", "down.sql"] {
                println!("cargo:rerun-if-changed={}", migration.path().join(file).display());
            }
        }
    }
}
