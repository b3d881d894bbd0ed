//! `setUserRole` from the Next.js module zt grew from, disabling a user and
//! revoking sessions: each takes effect at the very next request of the
//! user's existing sessions.
//!
//! `cargo run --example admin_actions [-- --database-url URL]`
// An example talks to the terminal.
#![allow(clippy::print_stdout)]

use zt_examples::{App, SignIn};
use zt_types::{RequestContext, Role, UserId};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = zt_examples::demo::url_from_args("zt-admin-actions.db")?;
    let app = App::open(&url, &zt_examples::demo::demo_key(&url.parse()?)?)?;
    let (admin, carol) = (UserId::parse("root")?, UserId::parse("carol")?);
    for (user, role) in [(&admin, Role::admin()), (&carol, Role::user())] {
        if app.users.user_state(user)?.is_none() {
            app.users.create_user(user, None, &role)?;
        }
        app.users.change_role(user, &role)?;
        app.users.enable_user(user)?;
    }
    let request = RequestContext::new()
        .with_ip("198.51.100.4".parse()?)
        .with_user_agent("admin-actions-example");
    let (_, root) = app.idp.sign_in(
        &admin,
        SignIn {
            mfa: true,
            minutes_ago: 0,
        },
    )?;

    let (_, carol_session) = app.idp.sign_in(&carol, SignIn::default())?;
    println!(
        "carol creates a project: {:?}",
        app.create_project(Some(&carol_session), &request, "Notes")
            .map(|p| p.id)
    );

    app.set_user_role(Some(&root), &request, &carol, &Role::admin())?;
    println!("root made carol an admin; her old session now gets:");
    report(app.create_project(Some(&carol_session), &request, "More notes"));

    let (_, carol_admin) = app.idp.sign_in(&carol, SignIn::default())?;
    app.disable_user(Some(&root), &request, &carol)?;
    println!("root disabled carol; her new admin session now gets:");
    report(app.revoke_sessions(Some(&carol_admin), &request, &admin));

    app.users.enable_user(&carol)?;
    let (_, again) = app.idp.sign_in(&carol, SignIn::default())?;
    app.revoke_sessions(Some(&root), &request, &carol)?;
    println!("root revoked all of carol's sessions; the newest one now gets:");
    report(app.create_project(Some(&again), &request, "Still here?"));
    Ok(())
}

fn report<T: std::fmt::Debug>(result: Result<T, zt_errors::Problem>) {
    match result {
        Ok(value) => println!("  allowed: {value:?}"),
        Err(problem) => println!("  HTTP {}: {}", problem.status(), problem.to_json()),
    }
}
