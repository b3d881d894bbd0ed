//! A stand-in identity provider's keys, generated at test time: RSA
//! (RS256), EC P-256 (ES256) and Ed25519 (EdDSA), each with its public JWK,
//! and a JWKS served over real HTTP on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use serde_json::{Value, json};

/// The PKCS#8 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The PKCS#8 prefix of a P-256 private key without its public key (RFC 5915
/// inside RFC 5208): the 32-byte scalar follows.
const P256_PKCS8: [u8; 35] = [
    0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20,
];

fn random_32() -> [u8; 32] {
    use getrandom::rand_core::TryRng;
    let mut bytes = [0; 32];
    getrandom::SysRng.try_fill_bytes(&mut bytes).unwrap();
    bytes
}

/// One RSA key per test binary: generating one takes a moment.
fn rsa_key() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap())
}

/// A signing key and its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) jwk: Value,
}

impl TestKey {
    fn new(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk: serde_json::to_value(jwk).unwrap(),
        }
    }

    /// An RS256 key (the binary's one RSA key, under `kid`).
    pub(crate) fn rsa(kid: &str) -> Self {
        let der = rsa_key().to_pkcs1_der().unwrap();
        Self::new(kid, Algorithm::RS256, EncodingKey::from_rsa_der(der.as_bytes()))
    }

    /// The RSA public key's PKCS#1 DER, which an algorithm-confusion attack
    /// uses as an HMAC secret.
    pub(crate) fn rsa_public_der() -> Vec<u8> {
        rsa_key().to_public_key().to_pkcs1_der().unwrap().as_bytes().to_vec()
    }

    /// A fresh ES256 key.
    pub(crate) fn ec(kid: &str) -> Self {
        let der = [&P256_PKCS8[..], &random_32()].concat();
        Self::new(kid, Algorithm::ES256, EncodingKey::from_ec_der(&der))
    }

    /// A fresh EdDSA (Ed25519) key.
    pub(crate) fn ed(kid: &str) -> Self {
        let der = [&ED25519_PKCS8[..], &random_32()].concat();
        Self::new(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
    }

    /// `claims`, signed, with this key's `alg` and `kid` in the header.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(&header, claims)
    }

    /// `claims`, signed with this key under `header`.
    pub(crate) fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
    }
}

/// A JWKS document of `keys`.
pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Base64url without padding, for hand-made tokens.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWKS served over HTTP on 127.0.0.1, whose document and status the test
/// changes, and which counts the fetches.
pub(crate) struct JwksServer {
    server: Arc<tiny_http::Server>,
    url: String,
    document: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
    worker: Option<JoinHandle<()>>,
}

impl JwksServer {
    pub(crate) fn start(document: String) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/.well-known/jwks.json", server.server_addr().to_ip().unwrap());
        let document = Arc::new(Mutex::new((200, document)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (server, document, fetches) = (Arc::clone(&server), Arc::clone(&document), Arc::clone(&fetches));
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = document.lock().unwrap().clone();
                    let response = tiny_http::Response::from_string(body)
                        .with_status_code(status)
                        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap());
                    let _ = request.respond(response);
                }
            })
        };
        Self {
            server,
            url,
            document,
            fetches,
            worker: Some(worker),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Serves `document` from now on.
    pub(crate) fn serve(&self, document: String) {
        *self.document.lock().unwrap() = (200, document);
    }

    /// Answers every fetch with `status` and no key set.
    pub(crate) fn fail(&self, status: u16) {
        *self.document.lock().unwrap() = (status, "oops".to_owned());
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
