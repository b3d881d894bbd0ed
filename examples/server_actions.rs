//! `createProject` from the Next.js module zt grew from, and updating and
//! deleting a project, each an audited, revalidated, sanitized server action.
//!
//! `cargo run --example server_actions [-- --database-url URL]`
// An example talks to the terminal.
#![allow(clippy::print_stdout)]

use zt_examples::{App, SignIn};
use zt_types::{RequestContext, Role, UserId};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = zt_examples::demo::url_from_args("zt-server-actions.db")?;
    let app = App::open(&url, &zt_examples::demo::demo_key(&url.parse()?)?)?;
    let alice = UserId::parse("alice")?;
    if app.users.user_state(&alice)?.is_none() {
        app.users.create_user(&alice, None, &Role::user())?;
    }
    let request = RequestContext::new()
        .with_ip("203.0.113.7".parse()?)
        .with_user_agent("server-actions-example");
    let (_, session) = app.idp.sign_in(&alice, SignIn::default())?;

    let project = app.create_project(Some(&session), &request, "Apollo")?;
    println!("created {project:?}");
    let renamed = app.rename_project(Some(&session), &request, project.id, "Artemis")?;
    println!("renamed {renamed:?}");
    match app.create_project(Some(&session), &request, "") {
        Ok(_) => println!("an empty name was accepted?"),
        Err(problem) => println!("an empty name gets {}: {}", problem.status(), problem.to_json()),
    }
    app.delete_project(Some(&session), &request, project.id)?;
    println!("deleted project #{}", project.id);

    let page = app.audit.query(
        &zt_audit::AuditFilter::new().user("alice"),
        &zt_audit::PageRequest::first(20).order(zt_audit::Order::NewestFirst),
    )?;
    print!("{}", zt_examples::audit_lines(&page.records));
    Ok(())
}
