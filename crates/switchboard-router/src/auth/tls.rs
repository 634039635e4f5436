//! TLS client certificate authentication (Crossbar's `tls` method): the certificate the TLS
//! handshake verified names the principal, by its SHA-1 fingerprint or by its subject CN being
//! the authid; a dynamic authenticator sees the certificate in the transport details. No
//! challenge: the TLS handshake was the proof.

use super::dynamic::Answer;
use super::principals::{Principal, Principals};
use super::{Authenticated, Context, Denied};
use crate::config::TlsPrincipal;
use switchboard_proto::errors;

/// What the router knows about a client certificate the TLS handshake verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// SHA-1 of the DER certificate, uppercase colon-separated hex (Crossbar's `certificate-sha1`).
    pub sha1: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

impl ClientCertificate {
    /// Fingerprint and common name of a DER certificate.
    pub fn from_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let sha1 = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let common_name = x509_parser::parse_x509_certificate(der)
            .ok()
            .and_then(|(_, cert)| {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok().map(str::to_owned))
            });
        Self { sha1, common_name }
    }

    /// Whether `fingerprint` (as written in a config: any case, with or without colons) is this
    /// certificate's.
    fn matches_sha1(&self, fingerprint: &str) -> bool {
        let normalize = |s: &str| {
            s.chars()
                .filter(|c| *c != ':')
                .map(|c| c.to_ascii_uppercase())
                .collect::<String>()
        };
        normalize(fingerprint) == normalize(&self.sha1)
    }
}

/// The identity `cert` authenticates as.
pub(super) async fn authenticate(
    principals: &Principals<TlsPrincipal>,
    ctx: &Context<'_>,
    cert: &ClientCertificate,
) -> Result<Authenticated, Denied> {
    let matches = |authid: &str, p: &TlsPrincipal| match &p.certificate_sha1 {
        Some(fingerprint) => cert.matches_sha1(fingerprint),
        None => cert.common_name.as_deref() == Some(authid),
    };
    let found = principals
        .resolve(ctx, |map| {
            // The certificate decides who the client is, as in Crossbar: HELLO's authid only
            // picks among the principals the certificate matches.
            let preferred = ctx
                .authid
                .and_then(|a| map.get_key_value(a))
                .filter(|(a, p)| matches(a, p));
            preferred
                .or_else(|| map.iter().find(|(a, p)| matches(a, p)))
                .ok_or_else(|| {
                    Denied::new(
                        errors::NO_SUCH_PRINCIPAL,
                        "no principal matches the client certificate",
                    )
                })
        })
        .await?;
    found.into_identity()
}

impl Principal for TlsPrincipal {
    const METHOD: &'static str = "tls";

    fn role(&self) -> &str {
        &self.role
    }

    fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// Nothing to check: the authenticator saw the certificate in the transport details, and its
    /// answer is the whole verdict.
    fn from_answer(answer: &Answer) -> Result<Self, Denied> {
        Ok(TlsPrincipal {
            certificate_sha1: None,
            role: answer.field_str("role").unwrap_or_default().to_owned(),
            realm: answer.field_str("realm").map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{Hello, endpoint, expect_denied, expect_welcome};

    const PRINCIPALS: &str = r#"{"tls": {"type": "static", "principals": {
        "alias": {"certificate-sha1": "b6e5000a", "role": "a"},
        "alice": {"certificate-sha1": "B6:E5:00:0A", "role": "b", "realm": "realm2"},
        "client.example": {"role": "c"}}}}"#;

    fn presenting(sha1: &str, common_name: Option<&str>) -> Hello {
        let cert = ClientCertificate {
            sha1: sha1.into(),
            common_name: common_name.map(str::to_owned),
        };
        Hello::new(&["tls"]).conn(|c| c.client_certificate = Some(cert))
    }

    #[tokio::test]
    async fn a_certificate_is_matched_by_fingerprint_and_hellos_authid_only_chooses() {
        let auth = endpoint(PRINCIPALS);
        let who = expect_welcome(&auth, presenting("B6:E5:00:0A", None)).await;
        assert_eq!((who.authid.as_str(), who.authrole.as_str()), ("alias", "a"));
        assert_eq!((who.authmethod, who.authprovider), ("tls", "static"));
        let who = expect_welcome(&auth, presenting("B6:E5:00:0A", None).authid("alice")).await;
        assert_eq!(who.authid, "alice");
        assert_eq!(who.realm.as_deref(), Some("realm2"));
        // An authid the certificate does not match is not believed.
        let hello = presenting("B6:E5:00:0A", None).authid("client.example");
        assert_eq!(expect_welcome(&auth, hello).await.authid, "alias");
    }

    #[tokio::test]
    async fn a_principal_without_fingerprint_is_matched_by_common_name() {
        let auth = endpoint(PRINCIPALS);
        let who = expect_welcome(&auth, presenting("00:11", Some("client.example"))).await;
        assert_eq!(
            (who.authid.as_str(), who.authrole.as_str()),
            ("client.example", "c")
        );
        let denied = expect_denied(&auth, presenting("00:11", Some("other.example"))).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(
            denied.message,
            "no principal matches the client certificate"
        );
    }

    #[test]
    fn certificate_fingerprints_compare_in_any_spelling() {
        let cert = ClientCertificate {
            sha1: "B6:E5:00:0A".into(),
            common_name: None,
        };
        assert!(cert.matches_sha1("b6:e5:00:0a"));
        assert!(cert.matches_sha1("B6E5000A"));
        assert!(!cert.matches_sha1("B6:E5:00:0B"));
    }
}
