//! `cargo xtask migrate [--database-url URL] [--only audit|sessions]`:
//! applies zt's migrations, or one set of them, by running `zt migrate` from
//! this workspace. `zt` checks the `--only` value.

use crate::shell::{cargo, run as run_step};

/// The README's embedded SQLite file.
pub(crate) const DEFAULT_URL: &str = "sqlite://zt-demo.db";

const USAGE: &str = "usage: cargo xtask migrate [--database-url URL] [--only audit|sessions]";

/// The options of `cargo xtask migrate`.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    url: String,
    only: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut url = None;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let slot = match flag {
            "--database-url" => &mut url,
            "--only" => &mut only,
            _ => return Err(USAGE.into()),
        };
        if slot.is_some() {
            return Err(format!("{flag} given twice\n{USAGE}"));
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?
                .clone(),
        };
        *slot = Some(value);
    }
    Ok(Options {
        url: url.unwrap_or_else(|| DEFAULT_URL.to_owned()),
        only,
    })
}

/// `zt migrate`, with the URL in its environment rather than its arguments,
/// where other users (`ps`) and error messages would see its password. `zt`
/// prints it redacted.
fn command(options: &Options) -> std::process::Command {
    let mut command = cargo();
    command.args(["run", "--quiet", "--package", "zt-cli", "--", "migrate"]);
    command.env("DATABASE_URL", &options.url);
    if let Some(only) = &options.only {
        command.args(["--only", only]);
    }
    command
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    run_step("migrate", &mut command(&options)).map_err(|_| "migration failed; the line above says why".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn parses_the_url_and_only_in_either_form_and_order() {
        assert_eq!(
            parse(&[]),
            Ok(Options {
                url: DEFAULT_URL.into(),
                only: None
            })
        );
        let expected = Ok(Options {
            url: "postgres://db/app".into(),
            only: Some("audit".into()),
        });
        assert_eq!(
            parse(&args(&["--database-url", "postgres://db/app", "--only", "audit"])),
            expected
        );
        assert_eq!(
            parse(&args(&["--only=audit", "--database-url=postgres://db/app"])),
            expected
        );
        assert_eq!(
            parse(&args(&["--only", "sessions"])),
            Ok(Options {
                url: DEFAULT_URL.into(),
                only: Some("sessions".into())
            })
        );
    }

    #[test]
    fn the_url_travels_in_the_environment() {
        let options = parse(&args(&["--database-url", "postgres://u:hunter2@db/app"])).unwrap();
        let command = command(&options);
        assert!(command.get_args().all(|arg| !arg.to_string_lossy().contains("hunter2")));
        assert!(
            command.get_envs().any(|(name, value)| name == "DATABASE_URL"
                && value.is_some_and(|value| value == "postgres://u:hunter2@db/app"))
        );
        // A failure to start names the program only.
        let error = run_step("x", &mut std::process::Command::new("/nonexistent/zt-xtask-test")).unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn rejects_unknown_missing_and_repeated_flags() {
        assert!(parse(&args(&["--frobnicate"])).is_err());
        assert!(parse(&args(&["--only"])).is_err());
        assert!(parse(&args(&["--only", "audit", "--only", "sessions"])).is_err());
        assert!(parse(&args(&["sqlite://x.db"])).is_err());
    }
}
