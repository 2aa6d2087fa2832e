//! GitHub webhook deliveries: signature checks and the headers a replay must keep.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secrets::Secret;

pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";
pub const SIGNATURE_256_HEADER: &str = "x-hub-signature-256";

/// Headers forwarded and stored with a delivery. Jenkins' GitHub plugin needs the exact
/// Content-Type, the event, and the signature over the untouched body; the delivery id
/// lets its duplicate warning work.
const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    EVENT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_256_HEADER,
    "x-hub-signature",
];

pub fn is_kept_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    KEPT_HEADERS.contains(&name.as_str())
        || name == "user-agent"
        || name.starts_with("x-github-hook-")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// `sha256=` + hex HMAC-SHA256 of the raw body, as GitHub computes it.
pub fn sign(body: &[u8], secret: &Secret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Accepts the body when its signature matches any of the secrets (several during a
/// rotation). The comparison is constant-time (`Mac::verify_slice`).
pub fn verify_signature(
    body: &[u8],
    header: Option<&str>,
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|digits| hex::decode(digits).ok())
        .filter(|bytes| bytes.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let matches = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A delivery id is used as an S3 key; GitHub sends GUIDs. Anything else is refused
/// rather than trusted as a path.
pub fn is_valid_delivery_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answer from GitHub's "Validating webhook deliveries".
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn signs_like_github_docs() {
        assert_eq!(
            sign(b"Hello, World!", &Secret::new(DOC_SECRET)),
            DOC_SIGNATURE
        );
    }

    #[test]
    fn accepts_any_secret_of_a_rotation() {
        let secrets = [Secret::new("old"), Secret::new(DOC_SECRET)];
        assert_eq!(
            verify_signature(b"Hello, World!", Some(DOC_SIGNATURE), &secrets),
            Ok(())
        );
    }

    #[test]
    fn rejects_wrong_missing_and_malformed() {
        let secrets = [Secret::new("other")];
        assert_eq!(
            verify_signature(b"Hello, World!", Some(DOC_SIGNATURE), &secrets),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"x", None, &secrets),
            Err(SignatureError::Missing)
        );
        for bad in ["sha1=abcd", "sha256=zz", "sha256=abcd", ""] {
            assert_eq!(
                verify_signature(b"x", Some(bad), &secrets),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_changed_byte_breaks_the_signature() {
        let secrets = [Secret::new(DOC_SECRET)];
        assert_eq!(
            verify_signature(b"Hello, World?", Some(DOC_SIGNATURE), &secrets),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn keeps_delivery_headers_only() {
        for kept in [
            "Content-Type",
            "X-GitHub-Event",
            "x-github-delivery",
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "User-Agent",
            "X-GitHub-Hook-ID",
            "X-GitHub-Hook-Installation-Target-Type",
        ] {
            assert!(is_kept_header(kept), "{kept}");
        }
        for dropped in ["Authorization", "Host", "X-Forwarded-For", "Cookie"] {
            assert!(!is_kept_header(dropped), "{dropped}");
        }
    }

    #[test]
    fn delivery_ids() {
        assert!(is_valid_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert!(!is_valid_delivery_id("../../etc"));
        assert!(!is_valid_delivery_id(""));
        assert!(!is_valid_delivery_id(&"a".repeat(200)));
    }
}
