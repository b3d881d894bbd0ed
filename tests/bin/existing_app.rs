//! The `existing_app` example (`examples/existing_app.rs`) as a binary of
//! the end-to-end tests, which run it as a process on both backends.

fn main() -> std::process::ExitCode {
    zt_examples::existing_app::main()
}
