//! Reruns the build when the example app's migrations change.

fn main() {
    for backend in ["postgres", "sqlite"] {
        let dir = std::path::Path::new("migrations").join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        for migration in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for file in ["up.sql", "down.sql"] {
                println!("cargo:rerun-if-changed={}", migration.path().join(file).display());
            }
        }
    }
}
