//! Identity providers' tokens, signed at test time with RSA, EC P-256 and
//! Ed25519 keys: what verifies, what is denied and why, the provider
//! presets, a JWKS over real HTTP with key rotation, and tokens without a
//! session version checked against the user's "valid after" instant on both
//! backends.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::keys::{JwksServer, TestKey, b64, jwks};
use support::t0;
use zt_error_codes::ErrorCode;
use zt_session::{
    ClaimLayout, DenialReason, ErrorKind, JwksSource, KeySet, ManualClock, Remedy, TokenProblem, TokenVerifier,
};
use zt_types::{AuthLevel, Clock, Role, Timestamp, UserId};

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "zt-api";

fn secs(at: Timestamp) -> i64 {
    at.unix_micros() / 1_000_000
}

/// Claims an OIDC provider would issue at `at`, for `alice`'s session `sess_1`.
fn claims_at(at: Timestamp) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "sid": "sess_1",
        "iat": secs(at), "nbf": secs(at), "exp": secs(at) + 300, "auth_time": secs(at) - 120,
        "amr": ["pwd", "otp"],
    })
}

fn verifier(keys: &[&TestKey], clock: &ManualClock) -> TokenVerifier {
    TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(keys)).unwrap())
        .audience([AUDIENCE])
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// The reason a token was denied for.
fn problem(verifier: &TokenVerifier, token: &str) -> TokenProblem {
    match verifier.verify(token).unwrap_err().reason() {
        DenialReason::InvalidToken(problem) => *problem,
        other => panic!("denied for {other:?}, not a token problem"),
    }
}

#[test]
fn tokens_of_each_key_type_verify_and_map() {
    let clock = ManualClock::new(t0());
    let (rsa, ec, ed) = (TestKey::rsa("rsa-1"), TestKey::ec("ec-1"), TestKey::ed("ed-1"));
    let verifier = verifier(&[&rsa, &ec, &ed], &clock);
    for key in [&rsa, &ec, &ed] {
        let verified = verifier.verify(&key.sign(&claims_at(t0()))).unwrap();
        assert_eq!(verified.key_id(), Some(key.kid.as_str()));
        let claims = verified.claims();
        assert_eq!(claims.user_id().as_str(), "alice");
        assert_eq!(claims.session_id().expose_secret(), "sess_1");
        assert_eq!(
            claims.session_version(),
            None,
            "a provider's token carries no zt version"
        );
        assert_eq!(claims.role(), None, "plain OIDC asserts no role");
        let login = t0().saturating_sub(Duration::from_secs(120));
        assert_eq!((claims.authenticated_at(), claims.issued_at()), (login, login));
        assert_eq!(verified.token_issued_at(), t0());
        assert_eq!(verified.expires_at(), t0().saturating_add(Duration::from_secs(300)));
        assert!(claims.factors().is_multi_factor());
        assert_eq!(claims.auth_level(), AuthLevel::Aal2);
        assert_eq!(verified.payload()["amr"], json!(["pwd", "otp"]));
    }
}

#[test]
fn bad_tokens_are_denied_with_their_reason() {
    let clock = ManualClock::new(t0());
    let (rsa, ed) = (TestKey::rsa("rsa-1"), TestKey::ed("ed-1"));
    let verifier = verifier(&[&rsa, &ed], &clock);
    let good = rsa.sign(&claims_at(t0()));
    verifier.verify(&good).unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims_at(t0());
        change(&mut claims);
        claims
    };

    // Tampered: the payload of another token under this signature.
    let parts: Vec<&str> = good.split('.').collect();
    let admin = b64(with(&|c| c["sub"] = json!("mallory")).to_string().as_bytes());
    let tampered = format!("{}.{admin}.{}", parts[0], parts[2]);
    assert_eq!(problem(&verifier, &tampered), TokenProblem::BadSignature);
    // Signed by a key that is not in the set, under a kid that is.
    let impostor = TestKey::ed("ed-1").sign(&claims_at(t0()));
    assert_eq!(problem(&verifier, &impostor), TokenProblem::BadSignature);

    // Time, with the leeway of 60 seconds.
    let expired = rsa.sign(&with(&|c| c["exp"] = json!(secs(t0()) - 61)));
    let denial = verifier.verify(&expired).unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::InvalidToken(TokenProblem::Expired));
    assert_eq!(denial.code(), ErrorCode::SessionExpired);
    assert_eq!(denial.remedy(), Remedy::SignIn);
    assert_eq!(
        denial.user_id().map(UserId::as_str),
        Some("alice"),
        "a signed token names its user"
    );
    verifier
        .verify(&rsa.sign(&with(&|c| c["exp"] = json!(secs(t0()) - 59))))
        .unwrap();
    let early = rsa.sign(&with(&|c| c["nbf"] = json!(secs(t0()) + 61)));
    assert_eq!(problem(&verifier, &early), TokenProblem::NotYetValid);
    let future = rsa.sign(&with(&|c| c["iat"] = json!(secs(t0()) + 3600)));
    assert_eq!(problem(&verifier, &future), TokenProblem::NotYetValid);
    verifier
        .verify(&rsa.sign(&with(&|c| c["nbf"] = json!(secs(t0()) + 59))))
        .unwrap();

    // Issuer and audience.
    let foreign = rsa.sign(&with(&|c| c["iss"] = json!("https://evil.example.com")));
    let denial = verifier.verify(&foreign).unwrap_err();
    assert_eq!(denial.reason(), &DenialReason::InvalidToken(TokenProblem::WrongIssuer));
    assert_eq!(denial.code(), ErrorCode::SessionInvalid);
    for aud in [json!("other-api"), json!(["a", "b"]), json!(42), Value::Null] {
        let token = rsa.sign(&with(&|c| c["aud"] = aud.clone()));
        assert_eq!(problem(&verifier, &token), TokenProblem::WrongAudience, "{aud}");
    }
    verifier
        .verify(&rsa.sign(&with(&|c| c["aud"] = json!(["other", AUDIENCE]))))
        .unwrap();

    // Algorithms come from the key set, never from the token.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "rsa-1"}).to_string().as_bytes()),
        b64(claims_at(t0()).to_string().as_bytes())
    );
    assert_eq!(problem(&verifier, &none), TokenProblem::DisallowedAlgorithm);
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("rsa-1".to_owned());
    let confused = jsonwebtoken::encode(
        &hs256,
        &claims_at(t0()),
        &EncodingKey::from_secret(&TestKey::rsa_public_der()).unwrap(),
    )
    .unwrap();
    assert_eq!(problem(&verifier, &confused), TokenProblem::DisallowedAlgorithm);
    // An allowed algorithm, but not the one of the key its kid names.
    let mut wrong_family = Header::new(Algorithm::EdDSA);
    wrong_family.kid = Some("rsa-1".to_owned());
    let crossed = ed.sign_with(&wrong_family, &claims_at(t0()));
    assert_eq!(problem(&verifier, &crossed), TokenProblem::DisallowedAlgorithm);

    // Keys.
    let unknown = TestKey::ed("ed-9").sign(&claims_at(t0()));
    assert_eq!(problem(&verifier, &unknown), TokenProblem::UnknownKey);
    let no_kid = rsa.sign_with(&Header::new(Algorithm::RS256), &claims_at(t0()));
    assert_eq!(
        problem(&verifier, &no_kid),
        TokenProblem::UnknownKey,
        "two keys: a token must say which"
    );
    let single = TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(&[&rsa])).unwrap())
        .audience([AUDIENCE])
        .clock(clock.clone())
        .build()
        .unwrap();
    single.verify(&no_kid).unwrap();

    // Shape.
    let crit = format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1})
            .to_string()
            .as_bytes()),
        parts[1],
        parts[2]
    );
    let long = format!("{good}{}", "A".repeat(TokenVerifier::DEFAULT_MAX_TOKEN_LEN));
    for bad in [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "Bearer abc.def.ghi",
        "%%%.abc.def",
        ".abc.def",
        "e30.e30.",
        &rsa.sign(&json!("a payload that is not an object")),
        &crit,
        &long,
        &rsa.sign(&with(&|c| {
            c.as_object_mut().unwrap().remove("sid");
        })),
        &rsa.sign(&with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        &rsa.sign(&with(&|c| c["sub"] = json!({"id": 1}))),
    ] {
        let denial = verifier.verify(bad).unwrap_err();
        assert_eq!(
            denial.reason(),
            &DenialReason::InvalidToken(TokenProblem::Malformed),
            "{}",
            &bad[..bad.len().min(80)]
        );
        let text = denial.to_string();
        assert!(
            text.starts_with("session denied (SESSION_INVALID): token is malformed"),
            "{text}"
        );
    }
}

#[test]
fn unsafe_configurations_are_refused() {
    let rsa = TestKey::rsa("rsa-1");
    let keys = || JwksSource::json(&jwks(&[&rsa])).unwrap();
    let refused = |builder: zt_session::VerifierBuilder| builder.build().unwrap_err().kind();
    assert_eq!(
        refused(TokenVerifier::builder(ISSUER, keys())),
        ErrorKind::InvalidConfig,
        "no audience decision"
    );
    assert_eq!(
        refused(TokenVerifier::builder("", keys()).audience([AUDIENCE])),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        refused(TokenVerifier::builder(ISSUER, keys()).audience(Vec::<String>::new())),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        refused(
            TokenVerifier::builder(ISSUER, keys())
                .skip_audience_check()
                .leeway(Duration::from_secs(301))
        ),
        ErrorKind::InvalidConfig
    );
    for algorithms in [vec!["HS256"], vec!["none"], vec!["RS256", "HS512"], vec![]] {
        assert_eq!(
            refused(
                TokenVerifier::builder(ISSUER, keys())
                    .skip_audience_check()
                    .algorithms(algorithms.clone())
            ),
            ErrorKind::InvalidConfig,
            "{algorithms:?}"
        );
    }
    for len in [0, 100, 65 * 1024] {
        assert_eq!(
            refused(
                TokenVerifier::builder(ISSUER, keys())
                    .skip_audience_check()
                    .max_token_len(len)
            ),
            ErrorKind::InvalidConfig
        );
    }
    for url in [
        "http://idp.example.com/jwks",
        "http://10.0.0.1/jwks",
        "ftp://idp.example.com/jwks",
        "idp.example.com",
        "https://idp.example.com/a b",
        "http://127.0.0.1:80@idp.example.com/jwks",
        "http://127.0.0.1@idp.example.com/jwks",
        "http://localhost/jwks",
    ] {
        assert_eq!(
            JwksSource::url(url).unwrap_err().kind(),
            ErrorKind::InvalidConfig,
            "{url}"
        );
    }
    for url in [
        "https://idp.example.com/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://[::1]/jwks",
    ] {
        JwksSource::url(url).unwrap();
    }
    // Restricting the algorithms denies the others.
    let ec = TestKey::ec("ec-1");
    let clock = ManualClock::new(t0());
    let rs_only = TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(&[&rsa, &ec])).unwrap())
        .audience([AUDIENCE])
        .algorithms(["RS256"])
        .clock(clock.clone())
        .build()
        .unwrap();
    rs_only.verify(&rsa.sign(&claims_at(t0()))).unwrap();
    assert_eq!(
        problem(&rs_only, &ec.sign(&claims_at(t0()))),
        TokenProblem::DisallowedAlgorithm
    );
}

#[test]
fn key_sets_skip_what_cannot_verify() {
    let rsa = TestKey::rsa("rsa-1");
    let mut enc = rsa.jwk.clone();
    enc["kid"] = json!("enc-1");
    enc["use"] = json!("enc");
    let mut oaep = rsa.jwk.clone();
    oaep["kid"] = json!("oaep-1");
    oaep["alg"] = json!("RSA-OAEP");
    let mut lying = rsa.jwk.clone();
    lying["kid"] = json!("lying-1");
    lying["alg"] = json!("ES256");
    let mut no_alg = rsa.jwk.clone();
    no_alg["kid"] = json!("plain-1");
    no_alg.as_object_mut().unwrap().remove("alg");
    let document = json!({"keys": [
        rsa.jwk, enc, oaep, lying, no_alg,
        {"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0", "alg": "HS256"},
        {"kty": "XYZ", "kid": "future-1"},
        {"kid": "no-kty"},
    ]})
    .to_string();
    let keys = KeySet::from_json(&document).unwrap();
    assert_eq!(
        keys.key_ids(),
        ["rsa-1", "plain-1"],
        "RSA without alg verifies RS256 only"
    );
    for bad in ["", "[]", "{}", r#"{"keys": {}}"#] {
        assert_eq!(
            KeySet::from_json(bad).unwrap_err().kind(),
            ErrorKind::KeysUnavailable,
            "{bad}"
        );
    }
    let huge = format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(300 * 1024));
    assert_eq!(KeySet::from_json(&huge).unwrap_err().kind(), ErrorKind::KeysUnavailable);
    let dir = std::env::temp_dir().join(format!("zt-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, &document).unwrap();
    assert_eq!(KeySet::from_file(&file).unwrap().len(), 2);
    assert_eq!(
        KeySet::from_file(dir.join("missing.json")).unwrap_err().kind(),
        ErrorKind::KeysUnavailable
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn provider_presets_map_their_claims() {
    let clock = ManualClock::new(t0());
    let key = TestKey::ec("ec-1");
    let build = |layout: ClaimLayout| {
        TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(&[&key])).unwrap())
            .skip_audience_check()
            .layout(layout)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let base = |extra: Value| {
        let mut claims =
            json!({"iss": ISSUER, "sub": "user_2abc", "sid": "sess_2xyz", "iat": secs(t0()), "exp": secs(t0()) + 60});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        key.sign(&claims)
    };

    // Clerk: fva counts back from iat; the org role loses its `org:` prefix.
    let clerk = TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(&[&key])).unwrap())
        .skip_audience_check()
        .authorized_parties(["https://app.example.com"])
        .layout(ClaimLayout::clerk())
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = base(json!({"azp": "https://app.example.com", "fva": [7, -1], "org_role": "org:admin"}));
    let claims = clerk.verify(&token).unwrap().into_claims();
    assert_eq!(
        claims.authenticated_at(),
        t0().saturating_sub(Duration::from_secs(7 * 60))
    );
    assert_eq!(
        (claims.role(), claims.auth_level()),
        (Some(&Role::admin()), AuthLevel::Aal1)
    );
    let elsewhere = base(json!({"azp": "https://evil.example.com", "fva": [7, -1]}));
    assert_eq!(problem(&clerk, &elsewhere), TokenProblem::WrongAudience);
    assert_eq!(
        problem(&clerk, &base(json!({"fva": [7, -1]}))),
        TokenProblem::WrongAudience
    );

    // Auth0: the roles an Action put under the namespace.
    let auth0 = build(ClaimLayout::auth0("https://zt.example.com"));
    let claims = auth0
        .verify(&base(
            json!({"https://zt.example.com/roles": ["user", "admin"], "auth_time": secs(t0()) - 5}),
        ))
        .unwrap()
        .into_claims();
    assert_eq!(claims.role(), Some(&Role::admin()));

    // Keycloak: realm roles; before Keycloak 18, `session_state` is the session.
    let keycloak = build(ClaimLayout::keycloak());
    let mut old = json!({"iss": ISSUER, "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "session_state": "3b5c",
        "iat": secs(t0()), "exp": secs(t0()) + 60, "realm_access": {"roles": ["offline_access", "user"]}});
    let claims = keycloak.verify(&key.sign(&old)).unwrap().into_claims();
    assert_eq!(
        (claims.session_id().expose_secret(), claims.role()),
        ("3b5c", Some(&Role::user()))
    );
    old.as_object_mut().unwrap().remove("session_state");
    assert_eq!(problem(&keycloak, &key.sign(&old)), TokenProblem::Malformed);

    // Ory: the role in `ext`, the level in `acr`.
    let ory = build(ClaimLayout::ory());
    let claims = ory
        .verify(&base(
            json!({"ext": {"role": "admin"}, "acr": "aal2", "amr": ["password", "totp"]}),
        ))
        .unwrap()
        .into_claims();
    assert_eq!(
        (claims.role(), claims.auth_level()),
        (Some(&Role::admin()), AuthLevel::Aal2)
    );

    // A version claim the app added.
    let versioned = build(ClaimLayout::oidc().version_claim(["zt_ver"]));
    let claims = versioned.verify(&base(json!({"zt_ver": 4}))).unwrap().into_claims();
    assert_eq!(claims.session_version(), Some(4));
    assert_eq!(problem(&versioned, &base(json!({}))), TokenProblem::Malformed);
}

#[test]
fn a_jwks_over_http_follows_key_rotation() {
    let clock = ManualClock::new(t0());
    let (old, new) = (TestKey::rsa("2026-11"), TestKey::ed("2026-12"));
    let idp = JwksServer::start(jwks(&[&old]));
    let verifier = TokenVerifier::builder(ISSUER, JwksSource::url(idp.url()).unwrap())
        .audience([AUDIENCE])
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(idp.fetches(), 0, "fetched at first use");
    verifier.verify(&old.sign(&claims_at(t0()))).unwrap();
    verifier.verify(&old.sign(&claims_at(t0()))).unwrap();
    assert_eq!(idp.fetches(), 1, "cached");

    // The provider starts signing with a new key: an unknown kid refetches once.
    idp.serve(jwks(&[&old, &new]));
    clock.advance(Duration::from_secs(40));
    verifier.verify(&new.sign(&claims_at(clock.now()))).unwrap();
    assert_eq!(idp.fetches(), 2);
    verifier.verify(&old.sign(&claims_at(clock.now()))).unwrap();
    assert_eq!(idp.fetches(), 2);

    // Unknown kids refetch at most once per 30 seconds, then are denied.
    let stranger = TestKey::ed("stranger");
    clock.advance(Duration::from_secs(5));
    for _ in 0..5 {
        assert_eq!(
            problem(&verifier, &stranger.sign(&claims_at(clock.now()))),
            TokenProblem::UnknownKey
        );
    }
    assert_eq!(idp.fetches(), 2, "rate-limited: the last fetch was 5 seconds ago");
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        problem(&verifier, &stranger.sign(&claims_at(clock.now()))),
        TokenProblem::UnknownKey
    );
    assert_eq!(idp.fetches(), 3, "one refetch, then denial");

    // The old key is retired; once the cache expires, its tokens are denied.
    idp.serve(jwks(&[&new]));
    clock.advance(Duration::from_secs(60));
    verifier.verify(&old.sign(&claims_at(clock.now()))).unwrap();
    assert_eq!(idp.fetches(), 3, "the cached set still holds it");
    clock.advance(JwksSource::DEFAULT_TTL);
    assert_eq!(
        problem(&verifier, &old.sign(&claims_at(clock.now()))),
        TokenProblem::UnknownKey
    );
    assert_eq!(idp.fetches(), 4);
    verifier.verify(&new.sign(&claims_at(clock.now()))).unwrap();

    // The provider fails: once the set expires, every token is denied as a
    // failed check, not as a bad token, and the fetches stay rate-limited.
    idp.fail(503);
    clock.advance(JwksSource::DEFAULT_TTL);
    for _ in 0..3 {
        let denial = verifier.verify(&new.sign(&claims_at(clock.now()))).unwrap_err();
        assert_eq!(denial.reason(), &DenialReason::CheckFailed);
        assert_eq!(
            (denial.code(), denial.remedy()),
            (ErrorCode::SessionCheckFailed, Remedy::RetryLater)
        );
        let cause = denial.store_error().unwrap().to_string();
        assert!(cause.contains("key set"), "{cause}");
    }
    assert_eq!(idp.fetches(), 5);
    idp.serve(jwks(&[&new]));
    clock.advance(JwksSource::DEFAULT_REFETCH_INTERVAL);
    verifier.verify(&new.sign(&claims_at(clock.now()))).unwrap();
    assert_eq!(idp.fetches(), 6, "healed at the next allowed fetch");
}

#[test]
fn an_unreachable_jwks_fails_closed() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let verifier = TokenVerifier::builder(
        ISSUER,
        JwksSource::url(&format!("http://127.0.0.1:{port}/jwks"))
            .unwrap()
            .timeout(Duration::from_secs(2)),
    )
    .audience([AUDIENCE])
    .build()
    .unwrap();
    let key = TestKey::ed("ed-1");
    let denial = verifier.verify(&key.sign(&claims_at(Timestamp::now()))).unwrap_err();
    assert_eq!(denial.code(), ErrorCode::SessionCheckFailed);
    assert_eq!(denial.store_error().unwrap().kind(), ErrorKind::KeysUnavailable);
}

/// Tokens without a session version, checked against the reference store's
/// "valid after" instant on each backend this crate was built with.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod valid_after {
    use std::sync::Arc;

    use zt_session::{Requirement, Result, SessionState, UserDirectory, UserState, Validator};
    use zt_testkit::TestDatabase;
    use zt_types::{RequestContext, SessionHash};

    use super::support::setup;
    use super::*;

    /// An app's directory that keeps a version but no "valid after" instant.
    struct VersionOnly;

    impl UserDirectory for VersionOnly {
        fn session_state(&self, _user: &UserId, _session: &SessionHash) -> Result<SessionState> {
            Ok(SessionState {
                user: Some(UserState::new(Role::user(), 3)),
                session_revoked: false,
            })
        }
    }

    fn tokens_without_a_version_end_at_valid_after(db: &TestDatabase) {
        let f = setup(db);
        let clock: &ManualClock = &f.clock;
        let key = TestKey::ed("ed-1");
        let verifier = TokenVerifier::builder(ISSUER, JwksSource::json(&jwks(&[&key])).unwrap())
            .audience([AUDIENCE])
            .layout(ClaimLayout::auth0("https://zt.example.com"))
            .clock(Arc::clone(&f.clock))
            .build()
            .unwrap();
        let alice = f.user("alice", Role::admin());
        let request = RequestContext::new().with_ip("203.0.113.7".parse().unwrap());
        let token_at = |now: Timestamp, login: Timestamp, role: &str| {
            let mut claims = claims_at(now);
            claims["auth_time"] = json!(secs(login));
            claims["https://zt.example.com/roles"] = json!([role]);
            key.sign(&claims)
        };
        let check = |token: &str| {
            f.validator
                .validate_token(&verifier, Some(token), &Requirement::new(), &request)
        };

        // Signed in a minute from now, on a whole second.
        clock.advance(Duration::from_secs(60));
        let login = clock.now();
        let token = token_at(login, login, "admin");
        let session = check(&token).unwrap();
        assert_eq!((session.role(), session.session_version()), (&Role::admin(), Some(0)));

        // A demotion moves valid_after: the session and its refreshed tokens end.
        clock.advance(Duration::from_secs(300));
        let change = f.store.change_role(&alice, &Role::user()).unwrap();
        let state = f.store.user_state(&alice).unwrap().unwrap();
        assert_eq!(state.version_changed_at(), Some(change.at));
        clock.advance(Duration::from_secs(60));
        let refreshed = token_at(clock.now(), login, "user");
        let denial = check(&refreshed).unwrap_err();
        assert_eq!(
            denial.reason(),
            &DenialReason::IssuedBeforeValidAfter {
                issued_at: login,
                valid_after: change.at
            }
        );
        assert_eq!(denial.code(), ErrorCode::SessionRevoked);
        // A token still asserting the old role is caught by the role first.
        assert_eq!(
            check(&token_at(clock.now(), login, "admin")).unwrap_err().code(),
            ErrorCode::SessionRoleChanged
        );
        // Signing in again works.
        let again = clock.now();
        check(&token_at(again, again, "user")).unwrap();

        // Revoke-all and disable move it too; a login in the same second as the
        // change counts as before it (tokens carry whole seconds): fail closed.
        clock.advance(Duration::from_millis(1500));
        f.store.revoke_all_sessions(&alice).unwrap();
        let same_second = Timestamp::from_unix_micros(secs(clock.now()) * 1_000_000).unwrap();
        assert_eq!(
            check(&token_at(clock.now(), same_second, "user")).unwrap_err().code(),
            ErrorCode::SessionRevoked
        );
        clock.advance(Duration::from_secs(1));
        check(&token_at(clock.now(), clock.now(), "user")).unwrap();

        // No token, and a token that does not verify, are denied and logged.
        assert_eq!(
            f.validator
                .validate_token(&verifier, None, &Requirement::new(), &request)
                .unwrap_err()
                .code(),
            ErrorCode::SessionMissing
        );
        let (denial, logs) = support::capture_logs(|| check("not.a.token").unwrap_err());
        assert_eq!(denial.reason(), &DenialReason::InvalidToken(TokenProblem::Malformed));
        assert!(logs.iter().any(|(_, message)| message == "session denied"), "{logs:?}");

        // A directory that tracks changes by version alone cannot check them: fail closed.
        let strict = Validator::new(VersionOnly).with_clock(Arc::clone(&f.clock));
        let denial = strict
            .validate_token(
                &verifier,
                Some(&token_at(clock.now(), clock.now(), "user")),
                &Requirement::new(),
                &request,
            )
            .unwrap_err();
        assert_eq!(denial.reason(), &DenialReason::Unverifiable);
        assert_eq!(
            (denial.code(), denial.remedy()),
            (ErrorCode::SessionCheckFailed, Remedy::None)
        );
    }

    fn every_change_moves_valid_after(db: &TestDatabase) {
        let f = setup(db);
        let bob = f.user("bob", Role::user());
        let epoch = Timestamp::from_unix_micros(0).unwrap();
        assert_eq!(
            f.store.user_state(&bob).unwrap().unwrap().version_changed_at(),
            Some(epoch),
            "no change yet"
        );
        let mut last = epoch;
        for step in 0..5 {
            f.clock.advance(Duration::from_secs(10));
            let change = match step {
                0 => f.store.change_role(&bob, &Role::admin()),
                1 => f.store.disable_user(&bob),
                2 => f.store.enable_user(&bob),
                3 => f.store.revoke_all_sessions(&bob),
                _ => f.store.delete_user(&bob),
            }
            .unwrap();
            let valid_after = f.store.user_state(&bob).unwrap().unwrap().version_changed_at().unwrap();
            assert_eq!(valid_after, f.clock.now(), "step {step}");
            assert_eq!(change.at, valid_after);
            assert!(valid_after > last);
            last = valid_after;
        }
        // Claims with a version are judged by it alone: a session begun before
        // the last change but signed with the current version (an app session
        // made after the change from an older provider session) passes; without
        // a version, the same session is denied.
        let dana = f.user("dana", Role::user());
        let provider_login = f.clock.now();
        f.clock.advance(Duration::from_secs(10));
        let change = f.store.change_role(&dana, &Role::admin()).unwrap();
        let versioned = zt_types::SessionClaims::new(
            zt_types::SessionId::parse("sess_d").unwrap(),
            dana.clone(),
            Role::admin(),
            change.session_version,
            provider_login,
        );
        f.validator
            .validate(&versioned, &Requirement::new(), &RequestContext::new())
            .unwrap();
        let unversioned =
            zt_types::SessionClaims::from_provider(zt_types::SessionId::parse("sess_d").unwrap(), dana, provider_login)
                .with_role(Role::admin());
        assert_eq!(
            f.validator
                .validate(&unversioned, &Requirement::new(), &RequestContext::new())
                .unwrap_err()
                .reason(),
            &DenialReason::IssuedBeforeValidAfter {
                issued_at: provider_login,
                valid_after: change.at
            }
        );

        // Revoking one session lists it; the others live on, so valid_after stays.
        let carol = f.user("carol", Role::user());
        f.clock.advance(Duration::from_secs(10));
        f.store
            .revoke_session(&carol, &zt_types::SessionId::parse("s").unwrap().hash())
            .unwrap();
        assert_eq!(
            f.store.user_state(&carol).unwrap().unwrap().version_changed_at(),
            Some(epoch)
        );
    }

    zt_testkit::backend_tests!(
        tokens_without_a_version_end_at_valid_after,
        every_change_moves_valid_after
    );
}
