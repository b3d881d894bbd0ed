//! Tidy checks over the whole repository: every Rust file opens with a `//!`
//! doc, no stub or silenced test is left in, the library crates'
//! dependencies build with the `rust-version` the workspace declares, every
//! dependency's licence is one `deny.toml` allows, the zt crates depend on
//! one another only along the layers ARCHITECTURE.md draws, and every
//! published crate ships both licence files and a README whose links work on
//! crates.io.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo` with these arguments, run at the root; its stdout, or a failed test.
fn cargo(args: &[&str]) -> Vec<u8> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo).current_dir(root()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "cargo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `cargo metadata` for the whole workspace, every feature on.
fn metadata() -> Value {
    serde_json::from_slice(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--all-features",
    ]))
    .unwrap()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["crates", "xtask", "examples", "tests", "bench", "fuzz"] {
        rust_files(&root().join(dir), &mut found);
    }
    assert!(found.len() > 50, "the walk found only {} files", found.len());
    found
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let undocumented: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a leading `//!` doc: {undocumented:#?}"
    );
}

#[test]
fn no_stubs_or_silenced_tests() {
    // Built from pieces so that this file does not match itself.
    let forbidden = [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["#[", "ignore"].concat(),
    ];
    let mut offenders = Vec::new();
    for path in all_rust_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for word in &forbidden {
            if text.contains(word.as_str()) {
                offenders.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// The crates users depend on; their `rust-version` must hold for everything
/// they pull in.
const LIBRARY_CRATES: [&str; 8] = [
    "zt-types",
    "zt-error-codes",
    "zt-errors",
    "zt-db",
    "zt-audit",
    "zt-session",
    "zt-monitoring",
    "zt-guard",
];

/// `1.88`, `1.88.0`: the numbers between the dots, missing ones as 0.
fn rust_version(text: &str) -> Vec<u64> {
    let mut numbers: Vec<u64> = text
        .split('.')
        .map(|part| {
            part.parse()
                .unwrap_or_else(|_| panic!("rust-version `{text}` is not dotted numbers"))
        })
        .collect();
    numbers.resize(3, 0);
    numbers
}

#[test]
fn dependencies_build_with_the_declared_rust_version() {
    let metadata = metadata();
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| (package["id"].as_str().unwrap(), package))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let roots: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .filter(|id| LIBRARY_CRATES.contains(&packages[id]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roots.len(),
        LIBRARY_CRATES.len(),
        "library crates missing from the workspace"
    );
    let declared = packages[roots[0]]["rust_version"]
        .as_str()
        .expect("the library crates declare a rust-version");

    // Every package reachable through normal dependencies, for any feature.
    let mut seen: BTreeSet<&str> = roots.iter().copied().collect();
    let mut pending = roots;
    while let Some(id) = pending.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kind| kind["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(dep_id) {
                pending.push(dep_id);
            }
        }
    }

    // A package with no rust-version declared makes no claim, and passes.
    let mut offenders = Vec::new();
    for package in seen.iter().map(|id| packages[id]) {
        if let Some(needs) = package["rust_version"].as_str()
            && rust_version(needs) > rust_version(declared)
        {
            let (name, version) = (&package["name"], &package["version"]);
            offenders.push(format!(
                "{} {} needs {needs}",
                name.as_str().unwrap(),
                version.as_str().unwrap()
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "the workspace declares rust-version {declared}, but these dependencies of the library crates \
         need a newer Rust; pin an older version in Cargo.lock (`cargo update -p NAME --precise VERSION`, \
         or the same on the dependent that requires it) or raise the rust-version: {offenders:#?}"
    );
}

/// zt-db is the one backend layer. In the other library crates a backend
/// `cfg` may only declare a per-backend module or an arm of the crate's one
/// dispatch on `zt_db::AnyConnection`, or allow dead code when no backend is
/// enabled; nothing else may change shape with a backend feature.
#[test]
fn backend_cfgs_only_declare_modules_or_dispatch_arms() {
    let crates = root().join("crates");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "zt-db" | "zt-testkit") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (index, line) in lines.iter().enumerate() {
                let backend_cfg = line.contains("cfg(")
                    && (line.contains(r#"feature = "sqlite""#) || line.contains(r#"feature = "postgres""#));
                if !backend_cfg || line.contains("not(any(") {
                    continue;
                }
                let item = lines[index + 1..]
                    .iter()
                    .map(|next| next.trim())
                    .find(|next| !next.starts_with("#[") && !next.starts_with("//"))
                    .unwrap_or_default();
                let allowed = item.starts_with("mod ")
                    || item.starts_with("pub(crate) mod ")
                    || item.starts_with("AnyConnection::");
                if !allowed {
                    offenders.push(format!("{}:{}: {item}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "backend cfgs outside zt-db that do more than declare a module or a dispatch arm: {offenders:#?}"
    );
}

/// `cargo metadata` of the workspace's own packages, without resolving.
fn workspace_packages() -> Vec<Value> {
    let metadata: Value =
        serde_json::from_slice(&cargo(&["metadata", "--format-version", "1", "--locked", "--no-deps"])).unwrap();
    metadata["packages"].as_array().unwrap().clone()
}

fn name(package: &Value) -> &str {
    package["name"].as_str().unwrap()
}

/// The folder of a package's manifest.
fn package_dir(package: &Value) -> PathBuf {
    Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

/// Whether `cargo publish` may publish the package: `publish` is absent, or
/// names registries.
fn publishable(package: &Value) -> bool {
    package["publish"]
        .as_array()
        .is_none_or(|registries| !registries.is_empty())
}

/// What `deny.toml`'s `[licenses]` accepts: the licences of its `allow`
/// list, more licences for the crates its `exceptions` name, and an
/// expression replacing what a crate declares for those it `clarify`s.
#[derive(Debug)]
struct LicencePolicy {
    allow: BTreeSet<String>,
    exceptions: HashMap<String, BTreeSet<String>>,
    clarified: HashMap<String, String>,
}

/// `Apache-2.0  WITH LLVM-exception` as `Apache-2.0 WITH LLVM-exception`.
fn one_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn licence_policy() -> LicencePolicy {
    let text = std::fs::read_to_string(root().join("deny.toml")).unwrap();
    let deny: toml::Table = text.parse().unwrap();
    let licenses = deny
        .get("licenses")
        .and_then(toml::Value::as_table)
        .expect("deny.toml has a [licenses] table");
    let ids = |value: Option<&toml::Value>, what: &str| -> BTreeSet<String> {
        value
            .and_then(toml::Value::as_array)
            .unwrap_or_else(|| panic!("deny.toml's {what} is a list of licences"))
            .iter()
            .map(|id| one_space(id.as_str().expect("a licence is a string")))
            .collect()
    };
    let allow = ids(licenses.get("allow"), "[licenses] allow");
    assert!(!allow.is_empty(), "deny.toml allows no licence at all");
    // cargo-deny names the crate `crate` (0.15 on) or `name` (before), with
    // an optional `@version`; an entry here covers every version.
    let crate_name = |entry: &toml::Value| -> String {
        let spec = entry
            .get("crate")
            .or_else(|| entry.get("name"))
            .and_then(toml::Value::as_str)
            .expect("a deny.toml licence entry names its crate");
        spec.split(['@', ':']).next().unwrap_or_default().to_owned()
    };
    let entries = |key: &str| {
        licenses
            .get(key)
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut exceptions: HashMap<String, BTreeSet<String>> = HashMap::new();
    for entry in entries("exceptions") {
        exceptions
            .entry(crate_name(&entry))
            .or_default()
            .extend(ids(entry.get("allow"), "exception's allow"));
    }
    let mut clarified = HashMap::new();
    for entry in entries("clarify") {
        let expression = entry
            .get("expression")
            .and_then(toml::Value::as_str)
            .expect("a deny.toml clarification has an expression");
        clarified.insert(crate_name(&entry), expression.to_owned());
    }
    LicencePolicy {
        allow,
        exceptions,
        clarified,
    }
}

/// An SPDX licence expression, read the lax way cargo-deny reads crates'
/// manifests: `OR`, `AND` and `WITH` in any case, `/` for `OR` (old
/// manifests), parentheses, and `ID+` ("or later") read as `ID`.
#[derive(Debug)]
enum Licence {
    /// One licence, with its exception if it has one (`Apache-2.0 WITH LLVM-exception`).
    Id(String),
    /// `a OR b`: the user picks one.
    Any(Vec<Licence>),
    /// `a AND b`: the user takes on all.
    All(Vec<Licence>),
}

impl Licence {
    fn parse(expression: &str) -> Result<Self, String> {
        let spaced = expression.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut at = 0;
        let licence = Self::any(&tokens, &mut at)?;
        match tokens.get(at) {
            None => Ok(licence),
            Some(token) => Err(format!("unexpected `{token}`")),
        }
    }

    fn any(tokens: &[&str], at: &mut usize) -> Result<Self, String> {
        let mut alternatives = vec![Self::all(tokens, at)?];
        while tokens.get(*at).is_some_and(|token| token.eq_ignore_ascii_case("OR")) {
            *at += 1;
            alternatives.push(Self::all(tokens, at)?);
        }
        Ok(match alternatives.len() {
            1 => alternatives.remove(0),
            _ => Self::Any(alternatives),
        })
    }

    fn all(tokens: &[&str], at: &mut usize) -> Result<Self, String> {
        let mut parts = vec![Self::one(tokens, at)?];
        while tokens.get(*at).is_some_and(|token| token.eq_ignore_ascii_case("AND")) {
            *at += 1;
            parts.push(Self::one(tokens, at)?);
        }
        Ok(match parts.len() {
            1 => parts.remove(0),
            _ => Self::All(parts),
        })
    }

    /// `( expression )`, or `ID [WITH EXCEPTION]`.
    fn one(tokens: &[&str], at: &mut usize) -> Result<Self, String> {
        let token = *tokens.get(*at).ok_or("the expression ends early")?;
        *at += 1;
        if token == "(" {
            let inner = Self::any(tokens, at)?;
            if tokens.get(*at) != Some(&")") {
                return Err("a `(` is never closed".to_owned());
            }
            *at += 1;
            return Ok(inner);
        }
        if token == ")" || ["AND", "OR", "WITH"].iter().any(|op| token.eq_ignore_ascii_case(op)) {
            return Err(format!("a licence expected, found `{token}`"));
        }
        let id = token.trim_end_matches('+');
        if tokens.get(*at).is_some_and(|next| next.eq_ignore_ascii_case("WITH")) {
            let exception = tokens.get(*at + 1).ok_or("`WITH` and no exception")?;
            *at += 2;
            return Ok(Self::Id(format!("{id} WITH {exception}")));
        }
        Ok(Self::Id(id.to_owned()))
    }

    /// Whether a user may take the code under this expression with only the
    /// `allowed` licences: one alternative of each `OR`, every part of each `AND`.
    fn allowed(&self, allowed: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Self::Id(id) => allowed(id),
            Self::Any(alternatives) => alternatives.iter().any(|licence| licence.allowed(allowed)),
            Self::All(parts) => parts.iter().all(|licence| licence.allowed(allowed)),
        }
    }

    /// The licences named that are not `allowed`, for the failure message.
    fn refused<'a>(&'a self, allowed: &dyn Fn(&str) -> bool, out: &mut BTreeSet<&'a str>) {
        match self {
            Self::Id(id) if !allowed(id) => {
                out.insert(id);
            }
            Self::Id(_) => {}
            Self::Any(licences) | Self::All(licences) => {
                for licence in licences {
                    licence.refused(allowed, out);
                }
            }
        }
    }
}

#[test]
fn licence_expressions_are_read_as_cargo_deny_reads_them() {
    let allowed = |id: &str| ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception"].contains(&id);
    let ok = |expression: &str| Licence::parse(expression).unwrap().allowed(&allowed);
    assert!(ok("MIT"));
    assert!(ok("MIT OR GPL-3.0-only"));
    assert!(ok("MIT/Apache-2.0"));
    assert!(ok("(MIT OR GPL-3.0-only) AND Apache-2.0"));
    assert!(ok("Apache-2.0 WITH LLVM-exception OR GPL-2.0+"));
    assert!(ok("GPL-3.0-only or MIT"), "operators in lower case");
    assert!(!ok("MIT AND GPL-3.0-only"));
    assert!(!ok("GPL-2.0-only WITH Classpath-exception-2.0"));
    assert!(!ok("(MIT OR GPL-3.0-only) AND (LGPL-2.1-or-later OR GPL-3.0-only)"));
    assert!(!ok("MIT WITH LLVM-exception"), "an exception is allowed only as listed");
    for broken in ["", "MIT OR", "(MIT", "MIT)", "AND MIT", "MIT WITH"] {
        assert!(Licence::parse(broken).is_err(), "`{broken}` parsed");
    }
}

/// Every package in the build, for any feature, has a licence expression
/// that `deny.toml` lets us take: under `OR` one alternative must be
/// allowed, under `AND` every part. A package with only a licence file
/// fails unless `deny.toml` clarifies it or lists it as an exception.
#[test]
fn every_dependency_has_a_licence_deny_toml_allows() {
    let policy = licence_policy();
    let metadata = metadata();
    let mut offenders = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let (name, version) = (name(package), package["version"].as_str().unwrap());
        let extra = policy.exceptions.get(name);
        let allowed = |id: &str| policy.allow.contains(id) || extra.is_some_and(|ids| ids.contains(id));
        let expression = match (policy.clarified.get(name), package["license"].as_str()) {
            (Some(clarified), _) => clarified.as_str(),
            (None, Some(declared)) => declared,
            // An exception names the crate: someone read its licence file.
            (None, None) if extra.is_some() => continue,
            (None, None) => {
                let file = package["license_file"].as_str().unwrap_or("none");
                offenders.push(format!(
                    "{name} {version}: no licence expression (licence file: {file}); add a [[licenses.clarify]] \
                     entry for it to deny.toml, or drop the dependency"
                ));
                continue;
            }
        };
        match Licence::parse(expression) {
            Ok(licence) if licence.allowed(&allowed) => {}
            Ok(licence) => {
                let mut refused = BTreeSet::new();
                licence.refused(&allowed, &mut refused);
                offenders.push(format!("{name} {version}: `{expression}` (not allowed: {refused:?})"));
            }
            Err(problem) => offenders.push(format!("{name} {version}: `{expression}` does not parse: {problem}")),
        }
    }
    assert!(
        offenders.is_empty(),
        "packages whose licence deny.toml's [licenses] allow list does not cover; replace them, or allow the \
         licence in deny.toml after reading it: {offenders:#?}"
    );
}

/// What a crate may depend on, as ARCHITECTURE.md's bird's-eye view says.
#[derive(Debug, Default, Clone)]
struct Allowed {
    /// Crates it may depend on in any way.
    always: BTreeSet<String>,
    /// Crates it may depend on only as an optional dependency (named in parentheses).
    optional: BTreeSet<String>,
}

/// The bird's-eye view of ARCHITECTURE.md: each line of its code block is
/// `crate[, crate] <- what it depends on`, where `all of the above` stands
/// for every crate of the lines before, and a crate named inside
/// parentheses may only be an optional dependency. A crate is named by its
/// package name or by its folder (`examples`, `tests`); `names` maps both to
/// the package name. Returns the crates in the order of the lines.
fn documented_layers(names: &BTreeMap<String, String>) -> Vec<(String, Allowed)> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let view = text
        .split("## Bird's-eye view")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Bird's-eye view`");
    let block = view
        .split("```")
        .nth(1)
        .expect("the bird's-eye view draws the crates in a code block");
    let mut layers: Vec<(String, Allowed)> = Vec::new();
    for line in block.lines().skip(1).map(str::trim).filter(|line| !line.is_empty()) {
        let (crates, dependencies) = line.split_once("<-").unwrap_or((line, ""));
        let mut allowed = Allowed::default();
        if dependencies.contains("all of the above") {
            allowed.always.extend(layers.iter().map(|(name, _)| name.clone()));
        }
        let (mut depth, mut word) = (0_u32, String::new());
        for ch in dependencies.chars().chain([' ']) {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                word.push(ch);
                continue;
            }
            if let Some(package) = names.get(&word) {
                if depth == 0 {
                    allowed.always.insert(package.clone());
                } else {
                    allowed.optional.insert(package.clone());
                }
            }
            word.clear();
            match ch {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        for name in crates.split(',').map(str::trim) {
            let package = names.get(name).unwrap_or_else(|| {
                panic!("ARCHITECTURE.md's bird's-eye view names `{name}`, which is no workspace crate")
            });
            layers.push((package.clone(), allowed.clone()));
        }
    }
    layers
}

/// Whether `to` is reachable from `from` along documented dependencies.
fn reaches(layers: &BTreeMap<String, Allowed>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut pending = vec![from.to_owned()];
    while let Some(next) = pending.pop() {
        if let Some(allowed) = layers.get(&next) {
            for dependency in allowed.always.iter().chain(&allowed.optional) {
                if dependency == to {
                    return true;
                }
                if seen.insert(dependency.clone()) {
                    pending.push(dependency.clone());
                }
            }
        }
    }
    false
}

/// The zt crates depend on one another only as ARCHITECTURE.md's bird's-eye
/// view draws them, which has no cycle: nothing depends on a crate above it.
/// `zt-testkit` may be a dev-dependency of any crate, and nothing else of a
/// published one.
#[test]
fn crates_depend_only_along_the_layers() {
    let packages = workspace_packages();
    let mut names = BTreeMap::new();
    for package in &packages {
        let name = name(package).to_owned();
        let folder = package_dir(package).file_name().unwrap().to_string_lossy().into_owned();
        names.insert(folder, name.clone());
        names.insert(name.clone(), name);
    }
    let documented = documented_layers(&names);
    let layers: BTreeMap<String, Allowed> = documented.iter().cloned().collect();
    let mut offenders = Vec::new();
    for (name, _) in &documented {
        if reaches(&layers, name, name) {
            offenders.push(format!(
                "ARCHITECTURE.md's bird's-eye view: {name} depends on itself through others"
            ));
        }
    }
    for package in &packages {
        let name = name(package);
        let Some(allowed) = layers.get(name) else {
            offenders.push(format!(
                "{name}: not in ARCHITECTURE.md's bird's-eye view; add a line saying which zt crates it depends on"
            ));
            continue;
        };
        for dependency in package["dependencies"].as_array().unwrap() {
            let target = dependency["name"].as_str().unwrap();
            if !layers.contains_key(target) && !names.contains_key(target) {
                continue;
            }
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            let optional = dependency["optional"].as_bool().unwrap_or(false);
            if target == "zt-testkit" {
                if kind != "dev" && publishable(package) {
                    offenders.push(format!(
                        "{name} takes zt-testkit as a {kind} dependency; a published crate may take it only as a \
                         dev-dependency"
                    ));
                }
                if kind == "dev" || publishable(package) {
                    continue;
                }
            }
            if allowed.always.contains(target) || (optional && allowed.optional.contains(target)) {
                continue;
            }
            if allowed.optional.contains(target) {
                offenders.push(format!(
                    "{name} depends on {target} unconditionally; ARCHITECTURE.md allows it only behind a feature \
                     (an optional dependency)"
                ));
            } else if reaches(&layers, target, name) {
                offenders.push(format!(
                    "{name} depends on {target} ({kind}), a crate above it: {target} depends on {name}"
                ));
            } else {
                offenders.push(format!(
                    "{name} depends on {target} ({kind}), which ARCHITECTURE.md's bird's-eye view does not allow \
                     it: move the code, or change the view on purpose"
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// The targets of a Markdown file's links and images, with their line
/// numbers: inline `[text](target)`, reference definitions `[name]: target`,
/// and HTML `href` and `src`; code blocks and code spans are skipped.
fn markdown_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_code_block = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        // Outside code spans: the even-numbered pieces between backticks.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let target = &rest[start + 2..];
            let end = target.find([')', ' ']).unwrap_or(target.len());
            links.push((index + 1, target[..end].to_owned()));
            rest = &target[end..];
        }
        let trimmed = prose.trim_start();
        if trimmed.starts_with('[')
            && let Some((_, target)) = trimmed.split_once("]:")
        {
            links.push((
                index + 1,
                target.split_whitespace().next().unwrap_or_default().to_owned(),
            ));
        }
        for attribute in ["href=\"", "src=\""] {
            let mut rest = prose.as_str();
            while let Some(start) = rest.find(attribute) {
                let target = &rest[start + attribute.len()..];
                let end = target.find('"').unwrap_or(target.len());
                links.push((index + 1, target[..end].to_owned()));
                rest = &target[end..];
            }
        }
    }
    links
}

/// Every crate `cargo publish` may publish ships `LICENSE-MIT` and
/// `LICENSE-APACHE` (the root's texts) and a README named by its `readme`
/// key, whose links are absolute: crates.io shows the README outside the
/// repository, where relative links break.
#[test]
fn published_crates_ship_licences_and_a_readme_with_absolute_links() {
    const LICENCES: [&str; 2] = ["LICENSE-MIT", "LICENSE-APACHE"];
    let texts: Vec<String> = LICENCES
        .iter()
        .map(|file| {
            std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file} at the repository root: {e}"))
        })
        .collect();
    let mut offenders = Vec::new();
    let mut checked = 0;
    for package in workspace_packages().iter().filter(|package| publishable(package)) {
        checked += 1;
        let (name, dir) = (name(package), package_dir(package));
        let listing = cargo(&["package", "-p", name, "--list", "--allow-dirty", "--offline"]);
        let shipped: BTreeSet<&str> = std::str::from_utf8(&listing).unwrap().lines().collect();
        for (file, text) in LICENCES.iter().zip(&texts) {
            match std::fs::read_to_string(dir.join(file)) {
                Err(_) => offenders.push(format!(
                    "{name}: no {file} in {}; make it a link to the root's {file}",
                    dir.display()
                )),
                Ok(found) if found != *text => offenders.push(format!("{name}: {file} differs from the root's")),
                Ok(_) if !shipped.contains(file) => {
                    offenders.push(format!(
                        "{name}: `cargo package` leaves out {file}; add it to `include`"
                    ));
                }
                Ok(_) => {}
            }
        }
        let Some(readme) = package["readme"].as_str() else {
            offenders.push(format!("{name}: no `readme` key in its Cargo.toml"));
            continue;
        };
        let Ok(text) = std::fs::read_to_string(dir.join(readme)) else {
            offenders.push(format!("{name}: its `readme`, {readme}, does not exist"));
            continue;
        };
        if !shipped.contains(readme) {
            offenders.push(format!(
                "{name}: `cargo package` leaves out {readme}; add it to `include`"
            ));
        }
        for (line, target) in markdown_links(&text) {
            let absolute = ["https://", "http://", "mailto:", "#"]
                .iter()
                .any(|prefix| target.starts_with(prefix));
            if !absolute {
                offenders.push(format!(
                    "{name}: {readme}:{line}: relative link `{target}`, which breaks on crates.io; link \
                     https://docs.rs/{name} or the repository URL instead"
                ));
            }
        }
    }
    assert!(checked >= 10, "only {checked} publishable crates found");
    assert!(offenders.is_empty(), "{offenders:#?}");
}
