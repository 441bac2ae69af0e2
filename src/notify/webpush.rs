//! Web Push (RFC 8030) to a browser that added the dashboard: the payload encrypted for that
//! browser alone as RFC 8291 says (the aes128gcm coding of RFC 8188), and each request signed
//! with the server's VAPID key (RFC 8292), made on first use and kept in the data directory.
//! No I/O here but reading and writing that key file.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The record size written in the header: one record holds any notice.
const RECORD_SIZE: u32 = 4096;
/// The most a payload may be: a push service takes at least 4,096 bytes of body, less the
/// header (86), the record's delimiter (1) and the tag (16).
pub const MAX_PAYLOAD: usize = 3993;

fn b64d(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.trim().trim_end_matches('=')).ok()
}

/// A browser's push subscription, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The shared authentication secret (16 bytes).
    pub auth: Vec<u8>,
}

/// Checks what a browser's `PushSubscription.toJSON()` gave: an https endpoint (http only on
/// loopback, for a push service on this machine), a P-256 point and a 16-byte secret.
pub fn subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<Subscription, String> {
    let url: reqwest::Url = endpoint
        .parse()
        .map_err(|_| "the subscription's endpoint is not a URL".to_string())?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("a push endpoint must be an https URL".into()),
    }
    if endpoint.len() > 2048 || url.username() != "" || url.password().is_some() {
        return Err("the subscription's endpoint is not one a push service gives".into());
    }
    let key = b64d(p256dh).ok_or("keys.p256dh is not base64url")?;
    p256::PublicKey::from_sec1_bytes(&key)
        .ok()
        .filter(|_| key.len() == 65)
        .ok_or("keys.p256dh is not an uncompressed P-256 public key")?;
    let auth = b64d(auth)
        .filter(|a| a.len() == 16)
        .ok_or("keys.auth is not 16 bytes of base64url")?;
    Ok(Subscription {
        endpoint: endpoint.to_string(),
        p256dh: key,
        auth,
    })
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .expect("HKDF output of at most 32 bytes");
}

/// `plaintext` encrypted for `sub` with the sender key `as_secret` and `salt`: the body of a
/// push request, `Content-Encoding: aes128gcm`.
pub fn encrypt_with(
    plaintext: &[u8],
    sub: &Subscription,
    as_secret: &p256::SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PAYLOAD {
        return Err(format!("a push payload is at most {MAX_PAYLOAD} bytes"));
    }
    let ua_public = p256::PublicKey::from_sec1_bytes(&sub.p256dh).map_err(|_| "bad browser key")?;
    let as_public = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
    // RFC 8291 §3.4: the input keying material, bound to both public keys.
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&sub.p256dh);
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    hkdf(&sub.auth, shared.raw_secret_bytes(), &key_info, &mut ikm);
    // RFC 8188 §2.2: the content key and nonce.
    let mut cek = [0u8; 16];
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
    let mut nonce = [0u8; 12];
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);
    // One record, the last: the plaintext and its delimiter, no padding.
    let mut record = plaintext.to_vec();
    record.push(2);
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let sealed = cipher
        .encrypt(
            &aes_gcm::Nonce::from(nonce),
            Payload {
                msg: &record,
                aad: b"",
            },
        )
        .map_err(|e| e.to_string())?;
    let mut body = Vec::with_capacity(86 + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// `plaintext` encrypted for `sub` with a fresh sender key and salt.
pub fn encrypt(plaintext: &[u8], sub: &Subscription) -> Result<Vec<u8>, String> {
    let as_secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let salt: [u8; 16] = rand::random();
    encrypt_with(plaintext, sub, &as_secret, &salt)
}

/// The server's VAPID key: who push services see sending.
pub struct Vapid {
    key: p256::ecdsa::SigningKey,
}

impl Vapid {
    /// The key in `path` (its 32 secret bytes, base64url), made and kept there (owner-only)
    /// if there is none.
    pub fn load_or_create(path: &Path) -> Result<Vapid, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes =
                    b64d(&text).ok_or_else(|| format!("{} is not a VAPID key", path.display()))?;
                let key = p256::ecdsa::SigningKey::from_slice(&bytes)
                    .map_err(|_| format!("{} is not a VAPID key", path.display()))?;
                Ok(Vapid { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key =
                    p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
                crate::private::write(path, B64.encode(key.to_bytes()).as_bytes())
                    .map_err(|e| format!("cannot keep the VAPID key in {}: {e}", path.display()))?;
                Ok(Vapid { key })
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The public key as a browser's `applicationServerKey` takes it (base64url, 65 bytes).
    pub fn public_key(&self) -> String {
        B64.encode(self.key.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a request to `endpoint`, good for
    /// 12 hours from `now` (Unix seconds). `subject` is how the push service may reach the
    /// sender (a mailto: or https: URL).
    pub fn authorization(&self, endpoint: &str, subject: &str, now: i64) -> Result<String, String> {
        let url: reqwest::Url = endpoint.parse().map_err(|_| "bad endpoint")?;
        let audience = url.origin().ascii_serialization();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now + 12 * 3600,
            "sub": subject,
        });
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
        let jwt = format!("{signing_input}.{}", B64.encode(signature.to_bytes()));
        Ok(format!("vapid t={jwt}, k={}", self.public_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8291, Appendix A.
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn the_rfc_8291_example_encrypts_byte_for_byte() {
        let sub = subscription(
            "https://push.example.net/p/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
            UA_PUBLIC,
            AUTH,
        )
        .unwrap();
        let secret = p256::SecretKey::from_slice(&b64d(AS_PRIVATE).unwrap()).unwrap();
        assert_eq!(
            B64.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            AS_PUBLIC
        );
        let salt: [u8; 16] = b64d(SALT).unwrap().try_into().unwrap();
        let body = encrypt_with(PLAINTEXT.as_bytes(), &sub, &secret, &salt).unwrap();
        assert_eq!(B64.encode(body), BODY);
        let fresh = encrypt(PLAINTEXT.as_bytes(), &sub).unwrap();
        assert_eq!(fresh.len(), b64d(BODY).unwrap().len());
        assert_ne!(B64.encode(fresh), BODY, "a fresh key and salt every time");
    }

    #[test]
    fn subscriptions_are_checked() {
        assert!(subscription("https://fcm.googleapis.com/fcm/send/x", UA_PUBLIC, AUTH).is_ok());
        assert!(subscription("http://127.0.0.1:9/push/1", UA_PUBLIC, AUTH).is_ok());
        for (endpoint, key, auth, why) in [
            ("http://push.example/x", UA_PUBLIC, AUTH, "https"),
            ("not a url", UA_PUBLIC, AUTH, "not a URL"),
            ("https://p.example/x", "AAAA", AUTH, "P-256"),
            ("https://p.example/x", UA_PUBLIC, "AAAA", "16 bytes"),
            ("https://u:p@p.example/x", UA_PUBLIC, AUTH, "not one"),
        ] {
            let e = subscription(endpoint, key, auth).unwrap_err();
            assert!(e.contains(why), "{endpoint}: {e}");
        }
        let too_long = "x".repeat(MAX_PAYLOAD + 1);
        let sub = subscription("https://p.example/x", UA_PUBLIC, AUTH).unwrap();
        assert!(encrypt(too_long.as_bytes(), &sub).is_err());
    }

    #[test]
    fn the_vapid_key_is_kept_and_signs_what_a_push_service_checks() {
        use p256::ecdsa::signature::Verifier;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.key");
        let made = Vapid::load_or_create(&path).unwrap();
        let again = Vapid::load_or_create(&path).unwrap();
        assert_eq!(
            made.public_key(),
            again.public_key(),
            "made once, then read"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let auth = made
            .authorization(
                "https://push.example.net:8443/p/abc?x=1",
                "mailto:me@example.org",
                1_000,
            )
            .unwrap();
        let (t, k) = auth
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, made.public_key());
        let parts: Vec<&str> = t.split('.').collect();
        let claims: serde_json::Value = serde_json::from_slice(&b64d(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:me@example.org");
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64d(k).unwrap()).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&b64d(parts[2]).unwrap()).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the JWT verifies with the key it names");

        std::fs::write(&path, "not a key").unwrap();
        let err = Vapid::load_or_create(&path).err().unwrap();
        assert!(err.contains("not a VAPID key"), "{err}");
    }
}
