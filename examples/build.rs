//! Reruns the build when the example apps' migrations change: the zt
//! example app's (`migrations/`) and the existing app's
//! (`existing_app_migrations/`).

fn main() {
    for root in ["migrations", "existing_app_migrations"] {
        for backend in ["postgres", "sqlite"] {
            let dir = std::path::Path::new(root).join(backend);
            println!("cargo:rerun-if-changed={}", dir.display());
            for migration in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                for file in ["up.sql", "down.sql"] {
                    println!("cargo:rerun-if-changed={}", migration.path().join(file).display());
                }
            }
        }
    }
}
