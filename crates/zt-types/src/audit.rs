//! Audit events: who did what to which resource, from where, and how it ended.

use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actor::Actor;
use crate::canonical_json::to_canonical_string;
use crate::error::{FieldError, FieldErrorKind};
use crate::ids::{EventId, text_type};
use crate::redact::{KeyClass, KeyRules, normalize_key, scrub_text};
use crate::request::RequestContext;
use crate::text::check_printable;
use crate::timestamp::Timestamp;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// The action happened.
    Success,
    /// The action was allowed but did not complete, such as on a database error.
    Failed,
    /// The action was refused: a denied session, a missing role, a stale login.
    Denied,
}

impl AuditStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Success, Self::Failed, Self::Denied];

    /// The stored name: `success`, `failed` or `denied`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Denied => "denied",
        }
    }
}

impl fmt::Display for AuditStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditStatus {
    type Err = FieldError;
    fn from_str(value: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(value))
            .ok_or(FieldError::new(
                "status",
                FieldErrorKind::InvalidFormat("one of success, failed, denied"),
            ))
    }
}

fn name_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | ':' | '-' | '/')
}

text_type!(
    /// What was done, such as `CREATE_PROJECT` or `project.create`: 1 to 64
    /// ASCII letters, digits and `_ . : - /`.
    Action, field = "action", max = 64, allowed = name_char
);

text_type!(
    /// The kind of thing acted on, such as `projects` or `users`: 1 to 100 ASCII
    /// letters, digits and `_ . : - /`.
    ResourceName, field = "resource", max = 100, allowed = name_char
);

text_type!(
    /// A stable error code, such as `DB_UNAVAILABLE`: `[A-Z][A-Z0-9_]*`, at most 64 bytes.
    ErrorCodeName, field = "error_code", max = 64,
    allowed = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
);

/// The id of the resource acted on, as text, because ids may be integers,
/// UUIDs or anything else: 1 to 255 bytes without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId(String);

impl ResourceId {
    /// The longest value accepted, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Parses and checks `value`.
    pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        check_printable("resource_id", &value, Self::MAX_LEN)?;
        Ok(Self(value))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        Self::parse(value)
    }
}

impl From<ResourceId> for String {
    fn from(value: ResourceId) -> Self {
        value.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Audit metadata: a JSON object in canonical text form (see
/// [`crate::canonical_json`]), redacted and bounded by an [`EventPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Metadata(String);

impl Metadata {
    /// The empty object.
    pub fn empty() -> Self {
        Self("{}".to_owned())
    }

    /// Serializes `value`, applies `policy`, and checks the bounds.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T, policy: &EventPolicy) -> Result<Self, FieldError> {
        let value = serde_json::to_value(value)
            .map_err(|error| FieldError::new("metadata", FieldErrorKind::Serialize(error.to_string())))?;
        Self::from_value(value, policy)
    }

    /// Applies `policy` to a JSON value and checks the bounds.
    pub fn from_value(mut value: Value, policy: &EventPolicy) -> Result<Self, FieldError> {
        match &value {
            Value::Null => return Ok(Self::empty()),
            Value::Object(_) => {}
            _ => {
                return Err(FieldError::new(
                    "metadata",
                    FieldErrorKind::InvalidFormat("a JSON object"),
                ));
            }
        }
        policy.apply(&mut value, 0)?;
        let text = to_canonical_string(&value);
        if text.len() > policy.max_metadata_bytes {
            return Err(FieldError::new(
                "metadata",
                FieldErrorKind::TooLong {
                    max: policy.max_metadata_bytes,
                    actual: text.len(),
                },
            ));
        }
        Ok(Self(text))
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The metadata as a JSON value.
    pub fn to_value(&self) -> Value {
        // The text was written by `to_canonical_string`, so it is valid JSON.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl TryFrom<String> for Metadata {
    type Error = FieldError;
    /// Re-reads metadata written earlier, such as from a spool file. Its
    /// redaction is not re-applied, but its form is re-canonicalized.
    fn try_from(text: String) -> Result<Self, FieldError> {
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| FieldError::new("metadata", FieldErrorKind::InvalidFormat("a JSON object")))?;
        if !value.is_object() {
            return Err(FieldError::new(
                "metadata",
                FieldErrorKind::InvalidFormat("a JSON object"),
            ));
        }
        Ok(Self(to_canonical_string(&value)))
    }
}

impl From<Metadata> for String {
    fn from(value: Metadata) -> Self {
        value.0
    }
}

/// The value that replaces a secret in metadata.
pub const REDACTED: &str = "[REDACTED]";

/// How metadata is cleaned and bounded before it is stored.
///
/// Keys are matched case-insensitively, ignoring separators, in two ways
/// (see the rules below): a *word* matches anywhere in the key with
/// everything but ASCII letters and digits removed and lowercased
/// (`X-Api-Key` reads `apikey`); a *token* matches one whole token of the key,
/// where tokens are split at separators, at case changes and between letters
/// and digits (`accessToken` is `access` + `token`, `x_auth` is `x` + `auth`).
/// Short words that are parts of innocent words are tokens, so `auth` redacts
/// `X-Auth` and `authToken` but not `author`, and `pass` redacts `db_pass`
/// but not `passenger`.
///
/// - **Redaction.** A member whose key contains a redact word, or has a
///   redact token, has its value replaced with [`REDACTED`], whatever the
///   value (an object or an array too). The default words are `password`,
///   `passwd`, `passphrase`, `passcode`, `pwd`, `secret`, `token`,
///   `authorization`, `bearer`, `cookie`, `apikey`, `privatekey`, `accesskey`,
///   `signingkey`, `encryptionkey`, `masterkey`, `sessionkey`, `credential`,
///   `signature`, `jwt`, `csrf`, `xsrf`, and the cookie prefixes
///   `aspsessionid`, `aspxauth`, `wordpressloggedin`, `wordpresssec`; the
///   default tokens are `auth`, `pass`, `pin`, `otp`, `totp`, `hotp`, `cred`,
///   `creds` and `sig`. So `api_key`, `x-api-key`, `refresh_token`,
///   `id_token`, `client_secret`, `private_key`, `Set-Cookie`, `XSRF-TOKEN`,
///   `user_password` and `.ASPXAUTH` are all caught. Over-redaction is the
///   safe side.
/// - **Hashing.** A member whose key ends with a hash word (default:
///   `sessionid`, `sessid`), or whose last token is a hash token (default:
///   `session`, `sess`, `sid`), has its value replaced with `sha256:<hex>`,
///   so that sessions stay correlatable without being stored: `session_id`,
///   `PHPSESSID`, `JSESSIONID`, `ASP.NET_SessionId`, `connect.sid`,
///   `laravel_session`, `rack.session`, `ci_session`, `_myapp_session`.
///   Hashing is checked before redaction.
/// - **Name-value pairs.** An object with a name member (`name`, `key`,
///   `header`, `field`, `param`) and a `value` or `values` member, such as a
///   header list's `{"name": "Authorization", "value": "Bearer …"}`, has its
///   value treated as if the name were its key; so does the second item of
///   each `[name, value]` pair in an array made only of such pairs.
/// - **Secrets inside strings.** Every string that is kept has URL
///   credentials masked (`https://user:[REDACTED]@host`), the values of
///   secret query, form and `key: value` parameters masked (`?token=…`,
///   `&api_key=…`, `password=…`, `Authorization: …`, `"token": "…"`), and
///   bearer tokens and JWTs masked ([`EventPolicy::scrub_strings`]).
/// - NUL in strings and keys, which PostgreSQL cannot store, becomes U+FFFD.
/// - Nesting is bounded (default 32 levels) and so is the canonical text
///   (default 16 KiB); over either bound is an error naming `metadata`.
#[derive(Debug, Clone)]
pub struct EventPolicy {
    rules: KeyRules,
    scrub_strings: bool,
    max_metadata_bytes: usize,
    max_depth: usize,
}

static DEFAULT_POLICY: LazyLock<EventPolicy> = LazyLock::new(EventPolicy::new);

impl Default for EventPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl EventPolicy {
    /// The default bound on canonical metadata text, in bytes.
    pub const DEFAULT_MAX_METADATA_BYTES: usize = 16 * 1024;
    /// The default bound on metadata nesting.
    pub const DEFAULT_MAX_DEPTH: usize = 32;

    /// The default policy.
    pub fn new() -> Self {
        Self {
            rules: KeyRules::defaults(),
            scrub_strings: true,
            max_metadata_bytes: Self::DEFAULT_MAX_METADATA_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }

    /// A shared instance of the default policy.
    pub fn default_ref() -> &'static Self {
        &DEFAULT_POLICY
    }

    /// Adds a redact word, matched anywhere in the normalized key.
    pub fn redact_key(mut self, word: &str) -> Self {
        self.rules.redact_words.push(normalize_key(word));
        self
    }

    /// Replaces the redact words, matched anywhere in the normalized key. The
    /// redact tokens stay; see [`EventPolicy::redact_tokens`].
    pub fn redact_keys<'a>(mut self, words: impl IntoIterator<Item = &'a str>) -> Self {
        self.rules.redact_words = words.into_iter().map(normalize_key).collect();
        self
    }

    /// Adds a redact token, matched against each whole token of a key.
    pub fn redact_token(mut self, token: &str) -> Self {
        self.rules.redact_tokens.push(normalize_key(token));
        self
    }

    /// Replaces the redact tokens.
    pub fn redact_tokens<'a>(mut self, tokens: impl IntoIterator<Item = &'a str>) -> Self {
        self.rules.redact_tokens = tokens.into_iter().map(normalize_key).collect();
        self
    }

    /// Replaces the hash words, matched at the end of the normalized key.
    pub fn hash_keys<'a>(mut self, words: impl IntoIterator<Item = &'a str>) -> Self {
        self.rules.hash_words = words.into_iter().map(normalize_key).collect();
        self
    }

    /// Replaces the hash tokens, matched against a key's last token.
    pub fn hash_tokens<'a>(mut self, tokens: impl IntoIterator<Item = &'a str>) -> Self {
        self.rules.hash_tokens = tokens.into_iter().map(normalize_key).collect();
        self
    }

    /// Whether secrets inside kept strings (URL credentials, secret query
    /// parameters, bearer tokens, JWTs) are masked. Default: on.
    pub fn scrub_strings(mut self, on: bool) -> Self {
        self.scrub_strings = on;
        self
    }

    /// Bounds the canonical metadata text. Default: 16 KiB. Larger bounds cost
    /// storage and make every verification slower.
    pub fn max_metadata_bytes(mut self, bytes: usize) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// Bounds nesting. Default: 32.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Whether a member named `key` would be redacted, hashed or kept.
    fn class_of(&self, key: &str) -> KeyClass {
        self.rules.classify(key)
    }

    fn apply(&self, value: &mut Value, depth: usize) -> Result<(), FieldError> {
        if depth > self.max_depth {
            return Err(FieldError::new(
                "metadata",
                FieldErrorKind::TooDeep { max: self.max_depth },
            ));
        }
        match value {
            Value::String(text) => {
                replace_nul(text);
                if self.scrub_strings
                    && let Some(scrubbed) = scrub_text(&self.rules, text)
                {
                    *text = scrubbed;
                }
            }
            Value::Array(items) => {
                let pairs = !items.is_empty()
                    && items
                        .iter()
                        .all(|item| matches!(item, Value::Array(pair) if pair.len() == 2 && pair[0].is_string()));
                for item in items.iter_mut() {
                    if pairs
                        && let Value::Array(pair) = item
                        && let Some(name) = pair[0].as_str()
                    {
                        let class = self.class_of(name);
                        if class != KeyClass::Keep {
                            pair[1] = conceal(class, &pair[1]);
                        }
                    }
                    self.apply(item, depth + 1)?;
                }
            }
            Value::Object(members) => {
                // A name-value pair: the name's class applies to the value.
                let pair_class = members
                    .iter()
                    .find(|(key, _)| KeyRules::is_pair_name(key))
                    .and_then(|(_, name)| name.as_str())
                    .map_or(KeyClass::Keep, |name| self.class_of(name));
                let entries = std::mem::take(members);
                for (mut key, mut member) in entries {
                    replace_nul(&mut key);
                    let class = match self.class_of(&key) {
                        KeyClass::Keep if KeyRules::is_pair_value(&key) => pair_class,
                        class => class,
                    };
                    match class {
                        KeyClass::Keep => self.apply(&mut member, depth + 1)?,
                        concealed => member = conceal(concealed, &member),
                    }
                    members.insert(key, member);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }
}

/// The value that replaces a secret or a session id.
fn conceal(class: KeyClass, value: &Value) -> Value {
    match class {
        KeyClass::Hash => Value::String(hash_value(value)),
        KeyClass::Redact | KeyClass::Keep => Value::String(REDACTED.to_owned()),
    }
}

fn replace_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{fffd}");
    }
}

/// Whether `text` is already what [`hash_value`] makes, so that applying a
/// policy twice changes nothing.
fn is_hashed(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn hash_value(value: &Value) -> String {
    if let Value::String(text) = value
        && (is_hashed(text) || text == REDACTED)
    {
        return text.clone();
    }
    let digest = match value {
        Value::String(text) => Sha256::digest(text.as_bytes()),
        other => Sha256::digest(to_canonical_string(other).as_bytes()),
    };
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// One audit event, ready to be stored: every field checked and bounded,
/// secrets redacted.
///
/// ```
/// use zt_types::{Actor, AuditEvent, AuditStatus, RequestContext, UserId};
///
/// let event = AuditEvent::builder(Actor::user(UserId::parse("42")?, None), "UPDATE_ROLE", "users")
///     .resource_id(7)
///     .metadata(&serde_json::json!({"from": "user", "to": "admin", "password": "hunter2"}))
///     .context(&RequestContext::new().with_ip("203.0.113.7".parse()?))
///     .status(AuditStatus::Success)
///     .build()?;
/// assert_eq!(event.metadata().as_str(), r#"{"to": "admin", "from": "user", "password": "[REDACTED]"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    event_id: EventId,
    created_at: Timestamp,
    actor: Actor,
    action: Action,
    resource: ResourceName,
    resource_id: Option<ResourceId>,
    metadata: Metadata,
    context: RequestContext,
    status: AuditStatus,
    error_code: Option<ErrorCodeName>,
}

impl AuditEvent {
    /// Starts an event. The status defaults to success; the time and event id
    /// are taken when the event is built.
    pub fn builder(actor: Actor, action: &str, resource: &str) -> AuditEventBuilder {
        AuditEventBuilder {
            actor,
            action: Action::parse(action),
            resource: ResourceName::parse(resource),
            resource_id: None,
            metadata: Ok(None),
            context: RequestContext::new(),
            status: AuditStatus::Success,
            error_code: None,
            event_id: None,
            created_at: None,
        }
    }

    /// The unique event id.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }
    /// When the event happened.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// Who did it.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// What was done.
    pub fn action(&self) -> &Action {
        &self.action
    }
    /// The kind of thing acted on.
    pub fn resource(&self) -> &ResourceName {
        &self.resource
    }
    /// The id of the thing acted on.
    pub fn resource_id(&self) -> Option<&ResourceId> {
        self.resource_id.as_ref()
    }
    /// The metadata, canonical and redacted.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    /// Where the request came from.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }
    /// How it ended.
    pub fn status(&self) -> AuditStatus {
        self.status
    }
    /// The error code, for failures and denials.
    pub fn error_code(&self) -> Option<&ErrorCodeName> {
        self.error_code.as_ref()
    }

    /// Applies `policy` to the metadata again: for an event read back from
    /// outside the process, such as a spool file or an import, that may have
    /// been built under fewer rules. Already redacted values stay redacted.
    pub fn reapply_policy(mut self, policy: &EventPolicy) -> Result<Self, FieldError> {
        self.metadata = Metadata::from_value(self.metadata.to_value(), policy)?;
        Ok(self)
    }
}

/// Builds an [`AuditEvent`]; see [`AuditEvent::builder`]. Errors are kept
/// until [`AuditEventBuilder::build`], which reports the first one.
#[derive(Debug)]
#[must_use]
pub struct AuditEventBuilder {
    actor: Actor,
    action: Result<Action, FieldError>,
    resource: Result<ResourceName, FieldError>,
    resource_id: Option<Result<ResourceId, FieldError>>,
    metadata: Result<Option<Value>, FieldError>,
    context: RequestContext,
    status: AuditStatus,
    error_code: Option<Result<ErrorCodeName, FieldError>>,
    event_id: Option<EventId>,
    created_at: Option<Timestamp>,
}

impl AuditEventBuilder {
    /// Sets the resource id, from anything printable such as an integer or UUID.
    pub fn resource_id(mut self, id: impl fmt::Display) -> Self {
        self.resource_id = Some(ResourceId::parse(id.to_string()));
        self
    }

    /// Sets the metadata from any `Serialize` value that serializes to a JSON
    /// object. It is redacted and bounded when the event is built.
    pub fn metadata<T: Serialize + ?Sized>(mut self, metadata: &T) -> Self {
        self.metadata = serde_json::to_value(metadata)
            .map(Some)
            .map_err(|error| FieldError::new("metadata", FieldErrorKind::Serialize(error.to_string())));
        self
    }

    /// Sets where the request came from.
    pub fn context(mut self, context: &RequestContext) -> Self {
        self.context = context.clone();
        self
    }

    /// Sets how the action ended. Default: success.
    pub fn status(mut self, status: AuditStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the error code of a failure or denial.
    pub fn error_code(mut self, code: &str) -> Self {
        self.error_code = Some(ErrorCodeName::parse(code));
        self
    }

    /// Sets the event id instead of a fresh UUIDv7, such as when importing.
    pub fn event_id(mut self, event_id: EventId) -> Self {
        self.event_id = Some(event_id);
        self
    }

    /// Sets the time instead of now, such as when importing.
    pub fn created_at(mut self, created_at: Timestamp) -> Self {
        self.created_at = Some(created_at);
        self
    }

    /// Checks every field and applies the default [`EventPolicy`].
    pub fn build(self) -> Result<AuditEvent, FieldError> {
        self.build_with(EventPolicy::default_ref())
    }

    /// Checks every field and applies `policy`.
    pub fn build_with(self, policy: &EventPolicy) -> Result<AuditEvent, FieldError> {
        let metadata = match self.metadata? {
            Some(value) => Metadata::from_value(value, policy)?,
            None => Metadata::empty(),
        };
        Ok(AuditEvent {
            event_id: self.event_id.unwrap_or_default(),
            created_at: self.created_at.unwrap_or_else(Timestamp::now),
            actor: self.actor,
            action: self.action?,
            resource: self.resource?,
            resource_id: self.resource_id.transpose()?,
            metadata,
            context: self.context,
            status: self.status,
            error_code: self.error_code.transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use serde_json::json;

    fn builder() -> AuditEventBuilder {
        AuditEvent::builder(
            Actor::user(UserId::parse("1").unwrap(), None),
            "CREATE_PROJECT",
            "projects",
        )
    }

    #[test]
    fn redaction_is_nested_and_case_insensitive() {
        let event = builder()
            .metadata(&json!({
                "Password": "p",
                "nested": {"X-Api-Key": "k", "list": [{"accessToken": "t"}], "keep": "v"},
                "SET-COOKIE": {"deep": "c"},
                "session_id": "sess_1",
            }))
            .build()
            .unwrap();
        let text = event.metadata().as_str();
        for secret in ["\"p\"", "\"k\"", "\"t\"", "\"c\"", "sess_1"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("\"keep\": \"v\""));
        let value = event.metadata().to_value();
        assert_eq!(value["session_id"].as_str().unwrap().len(), 7 + 64);
        assert_eq!(value["nested"]["list"][0]["accessToken"], REDACTED);
    }

    #[test]
    fn header_lists_and_pairs_are_redacted_by_name() {
        let event = builder()
            .metadata(&json!({
                "headers": [
                    {"name": "Authorization", "value": "Basic c2VjcmV0"},
                    {"name": "Accept", "value": "text/html"},
                    {"key": "X-Api-Key", "values": ["k1", "k2"]},
                    {"header": "Cookie", "value": "a=b"},
                    {"name": "PHPSESSID", "value": "s1"},
                ],
                "pairs": [["Authorization", "Bearer abc"], ["Accept", "*/*"]],
                "tags": ["token", "public"],
            }))
            .build()
            .unwrap();
        let value = event.metadata().to_value();
        let headers = &value["headers"];
        assert_eq!(headers[0]["value"], REDACTED);
        assert_eq!(headers[1]["value"], "text/html");
        assert_eq!(headers[2]["values"], REDACTED);
        assert_eq!(headers[3]["value"], REDACTED);
        assert!(headers[4]["value"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(headers[0]["name"], "Authorization");
        assert_eq!(value["pairs"][0][1], REDACTED);
        assert_eq!(value["pairs"][1][1], "*/*");
        // A plain list of strings is not a list of pairs.
        assert_eq!(value["tags"], json!(["token", "public"]));
    }

    #[test]
    fn secrets_inside_strings_are_masked() {
        let event = builder()
            .metadata(&json!({
                "url": "https://ada:hunter2@example.com/cb?code=1&access_token=tok123&state=x",
                "note": "retrying with password=p4ss",
            }))
            .build()
            .unwrap();
        let value = event.metadata().to_value();
        assert_eq!(
            value["url"],
            "https://ada:[REDACTED]@example.com/cb?code=1&access_token=[REDACTED]&state=x"
        );
        assert_eq!(value["note"], "retrying with password=[REDACTED]");
        let kept = builder()
            .metadata(&json!({"url": "https://ada:hunter2@example.com/"}))
            .build_with(&EventPolicy::new().scrub_strings(false))
            .unwrap();
        assert!(kept.metadata().as_str().contains("hunter2"));
    }

    #[test]
    fn reapplying_a_policy_redacts_what_slipped_through() {
        let lax = EventPolicy::new()
            .redact_keys([])
            .redact_tokens([])
            .scrub_strings(false);
        let event = builder()
            .metadata(&json!({"password": "p", "auth": "a", "keep": "k"}))
            .build_with(&lax)
            .unwrap();
        assert!(event.metadata().as_str().contains("\"p\""));
        let again = event.reapply_policy(EventPolicy::default_ref()).unwrap();
        assert_eq!(
            again.metadata().as_str(),
            r#"{"auth": "[REDACTED]", "keep": "k", "password": "[REDACTED]"}"#
        );
        let twice = again.clone().reapply_policy(EventPolicy::default_ref()).unwrap();
        assert_eq!(twice, again);
    }

    #[test]
    fn custom_redact_list() {
        let policy = EventPolicy::new().redact_keys(["ssn"]);
        let event = builder()
            .metadata(&json!({"SSN": "123", "password": "p"}))
            .build_with(&policy)
            .unwrap();
        assert_eq!(event.metadata().as_str(), r#"{"SSN": "[REDACTED]", "password": "p"}"#);
    }

    #[test]
    fn bounds_are_typed_errors_naming_the_field() {
        let big = json!({"blob": "x".repeat(EventPolicy::DEFAULT_MAX_METADATA_BYTES)});
        let error = builder().metadata(&big).build().unwrap_err();
        assert_eq!(error.field(), "metadata");
        assert!(matches!(error.kind(), FieldErrorKind::TooLong { .. }));

        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        assert!(matches!(
            builder().metadata(&deep).build().unwrap_err().kind(),
            FieldErrorKind::TooDeep { .. }
        ));

        assert_eq!(builder().metadata(&json!([1])).build().unwrap_err().field(), "metadata");
        assert_eq!(
            builder().resource_id("x".repeat(256)).build().unwrap_err().field(),
            "resource_id"
        );
        assert_eq!(builder().error_code("lower").build().unwrap_err().field(), "error_code");
        let bad_action = AuditEvent::builder(Actor::System, "DROP TABLE", "x")
            .build()
            .unwrap_err();
        assert_eq!(bad_action.field(), "action");
    }

    #[test]
    fn nul_is_replaced_and_controls_kept() {
        let event = builder().metadata(&json!({"k\u{0}": "a\u{0}b\r\n"})).build().unwrap();
        assert_eq!(event.metadata().to_value()["k\u{fffd}"], "a\u{fffd}b\r\n");
    }

    #[test]
    fn events_round_trip_through_serde() {
        let event = builder()
            .resource_id(9)
            .metadata(&json!({"a": 1}))
            .status(AuditStatus::Denied)
            .build()
            .unwrap();
        let text = serde_json::to_string(&event).unwrap();
        let back: AuditEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
    }
}
