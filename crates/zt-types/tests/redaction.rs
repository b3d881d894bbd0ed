//! Redaction by default: secret keys in many spellings and nesting shapes
//! never let their value through, and innocent keys keep theirs.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use zt_types::{Actor, AuditEvent};

/// Names of secrets and session ids as frameworks and apps spell them, in
/// words; each is respelled below.
const SECRET_NAMES: &[&[&str]] = &[
    &["password"],
    &["passwd"],
    &["passphrase"],
    &["passcode"],
    &["pwd"],
    &["pass"],
    &["secret"],
    &["client", "secret"],
    &["token"],
    &["access", "token"],
    &["refresh", "token"],
    &["id", "token"],
    &["auth"],
    &["auth", "token"],
    &["authorization"],
    &["proxy", "authorization"],
    &["bearer"],
    &["jwt"],
    &["otp"],
    &["pin"],
    &["csrf"],
    &["xsrf", "token"],
    &["cookie"],
    &["set", "cookie"],
    &["api", "key"],
    &["apikey"],
    &["private", "key"],
    &["access", "key"],
    &["credentials"],
    &["signature"],
    &["session"],
    &["session", "id"],
    &["sessionid"],
    &["sid"],
    &["connect", "sid"],
    &["phpsessid"],
    &["jsessionid"],
    &["aspsessionid"],
    &["laravel", "session"],
    &["rack", "session"],
    &["ci", "session"],
    &["wordpress", "logged", "in"],
];

/// Keys that only look like secrets.
const INNOCENT_NAMES: &[&[&str]] = &[
    &["author"],
    &["author", "id"],
    &["authority"],
    &["passenger"],
    &["passenger", "count"],
    &["passport", "country"],
    &["bypass", "cache"],
    &["compass"],
    &["footprint"],
    &["sidebar"],
    &["inside"],
    &["consider"],
    &["session", "count"],
    &["session", "started", "at"],
    &["spinner"],
    &["keyboard", "layout"],
    &["primary", "key"],
    &["description"],
    &["project", "name"],
    &["assessment"],
];

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// One spelling of `words`: joined by a separator in lower, upper or title
/// case, or in camelCase / PascalCase.
fn spelling(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    (0usize..4, 0usize..5).prop_map(move |(case, joint)| {
        if joint == 4 {
            // camelCase, or PascalCase for case 1.
            return words
                .iter()
                .enumerate()
                .map(|(i, word)| {
                    if i == 0 && case != 1 {
                        (*word).to_owned()
                    } else {
                        capitalize(word)
                    }
                })
                .collect();
        }
        let separator = ["_", "-", ".", " "][joint];
        words
            .iter()
            .map(|word| match case {
                0 => (*word).to_owned(),
                1 => word.to_ascii_uppercase(),
                _ => capitalize(word),
            })
            .collect::<Vec<_>>()
            .join(separator)
    })
}

/// A secret key: a spelling, with a prefix such as `x-` or `user_`.
fn secret_key() -> impl Strategy<Value = String> {
    let names = prop::sample::select(SECRET_NAMES.to_vec());
    (
        names,
        prop::sample::select(vec!["", "x-", "X-", "user_", "db.", "_", "__Host-", "upstream "]),
    )
        .prop_flat_map(|(words, prefix)| spelling(words).prop_map(move |key| format!("{prefix}{key}")))
}

fn innocent_key() -> impl Strategy<Value = String> {
    prop::sample::select(INNOCENT_NAMES.to_vec()).prop_flat_map(spelling)
}

/// A secret value that cannot occur in the rest of the metadata (nor in a
/// lowercase SHA-256 hex digest).
fn secret_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{10,24}".prop_map(|tail| format!("Zq{tail}"))
}

/// Puts `key: secret` into the metadata in one of several shapes.
fn shaped(key: String, secret: &str, shape: u8, depth: u8) -> Value {
    let query_key = key.replace(' ', "_");
    let mut value = match shape % 9 {
        0 => json!({ key: secret }),
        1 => json!({ key: { "nested": secret } }),
        2 => json!({ key: [secret, "other"] }),
        3 => json!({ "headers": [{ "name": key, "value": secret }, { "name": "Accept", "value": "*/*" }] }),
        4 => json!({ "headers": [{ "key": key, "values": [secret] }] }),
        5 => json!({ "headers": [[key, secret], ["Accept", "*/*"]] }),
        6 => json!({ "url": format!("https://example.com/cb?page=2&{query_key}={secret}&x=1") }),
        7 => json!({ "url": format!("postgres://app:{secret}@db.internal:5432/app") }),
        _ => json!({ "line": format!("upstream said {query_key}={secret} and stopped") }),
    };
    for level in 0..depth {
        value = if level % 2 == 0 {
            json!({ "request": value, "id": level })
        } else {
            json!([{ "entry": value }])
        };
    }
    if value.is_array() {
        value = json!({ "list": value });
    }
    value
}

fn event(metadata: &Value) -> AuditEvent {
    AuditEvent::builder(Actor::System, "TEST", "tests")
        .metadata(metadata)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn secret_values_never_survive(key in secret_key(), secret in secret_value(), shape in 0u8..9, depth in 0u8..4) {
        let metadata = shaped(key.clone(), &secret, shape, depth);
        let stored = event(&metadata);
        let text = stored.metadata().as_str();
        prop_assert!(!text.contains(&secret), "{key:?} (shape {shape}) leaked {secret}: {text}");
        // Applying the policy again changes nothing.
        let again = stored.clone().reapply_policy(zt_types::EventPolicy::default_ref()).unwrap();
        prop_assert_eq!(again.metadata().as_str(), text);
    }

    #[test]
    fn innocent_keys_keep_their_values(key in innocent_key(), value in "[a-z0-9 ]{1,20}") {
        let text_value = format!("visible {value}");
        let metadata = json!({
            key.clone(): text_value.clone(),
            "headers": [{ "name": key.clone(), "value": text_value.clone() }],
            "url": format!("https://example.com/a?{}={}", key.replace(' ', "_"), value.replace(' ', "+")),
        });
        let stored = event(&metadata).metadata().to_value();
        prop_assert_eq!(&stored[&key], &Value::String(text_value.clone()));
        prop_assert_eq!(&stored["headers"][0]["value"], &Value::String(text_value));
        prop_assert_eq!(&stored["url"], &metadata["url"]);
    }
}

#[test]
fn ordinary_metadata_is_untouched() {
    let metadata = json!({
        "author": "ada",
        "passenger": {"seat": "12A"},
        "homepage": "https://example.com/docs?page=2#top",
        "message": "the bearer of news; time: 12:00",
        "headers": [{"name": "Accept", "value": "text/html"}],
        "tags": ["token", "public"],
    });
    assert_eq!(event(&metadata).metadata().to_value(), metadata);
}
