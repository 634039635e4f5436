//! WAMP-Cryptosign (spec, "WAMP-Cryptosign"): Ed25519 challenge-response: public keys, challenges and
//! signature checks.
//!
//! `start` is the method: the principal is the one HELLO's authid names, or without one the
//! principal holding HELLO's public key, or whoever an authenticator vouches for that key; its
//! `Pending` checks the signature of a fresh challenge.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, UnparsedPublicKey};
use subtle::ConstantTimeEq;
use switchboard_proto::{Dict, Value, errors};

use super::dynamic::Answer;
use super::principals::{Principal, Principals};
use super::{Authenticated, ChannelBinding, Context, Denied, denied};
use crate::config::CryptosignPrincipal;

/// Checks HELLO's public key and resolves its principal; the CHALLENGE extra (the challenge, and
/// the channel binding type when bound) and the exchange waiting for the signature.
pub(super) async fn start(
    principals: &Principals<CryptosignPrincipal>,
    ctx: &Context<'_>,
) -> Result<(Dict, Pending), Denied> {
    let Some(pubkey_hex) = ctx.authextra.get("pubkey").and_then(Value::as_str) else {
        return Err(Denied::new(
            errors::AUTHENTICATION_FAILED,
            "WAMP-Cryptosign needs HELLO.Details.authextra.pubkey",
        ));
    };
    let Some(pubkey) = parse_public_key(pubkey_hex) else {
        return Err(denied(
            "authextra.pubkey is not an Ed25519 public key in hex",
        ));
    };
    let binding = ctx.channel_binding()?;
    let same_key = |k: &String| parse_public_key(k) == Some(pubkey);
    let found = principals
        .resolve(ctx, |map| match ctx.authid {
            Some(authid) => map
                .get_key_value(authid)
                .ok_or_else(|| ctx.no_such_principal("cryptosign", authid)),
            None => map
                .iter()
                .find(|(_, p)| p.authorized_keys.iter().any(same_key))
                .ok_or_else(|| {
                    Denied::new(
                        errors::NO_SUCH_PRINCIPAL,
                        "no principal has this public key",
                    )
                }),
        })
        .await?;
    if !found.principal.authorized_keys.iter().any(same_key) {
        return Err(denied(if found.is_static() {
            "the public key is not authorized for this principal"
        } else {
            "the authenticator did not authorize this public key"
        }));
    }
    let mut identity = found.into_identity()?;
    identity
        .authextra
        .insert("pubkey".into(), pubkey_hex.into());
    let nonce = new_challenge();
    let mut extra = Dict::new();
    extra.insert("challenge".into(), hex::encode(nonce).into());
    if let Some(b) = &binding {
        extra.insert("channel_binding".into(), b.kind.into());
    }
    let pending = Pending {
        pubkey,
        nonce,
        binding,
        identity,
    };
    Ok((extra, pending))
}

/// A WAMP-Cryptosign exchange waiting for AUTHENTICATE.
#[derive(Debug)]
pub(super) struct Pending {
    pubkey: [u8; 32],
    nonce: [u8; 32],
    binding: Option<ChannelBinding>,
    /// Who the client is once the signature checks out (its authextra names the key).
    identity: Authenticated,
}

impl Pending {
    /// Checks AUTHENTICATE's signature of the challenge.
    pub(super) fn authenticate(self, signature: &str) -> Result<Authenticated, Denied> {
        if !verify(&self.pubkey, &self.nonce, self.binding.as_ref(), signature) {
            return Err(denied("invalid signature"));
        }
        Ok(self.identity)
    }
}

impl Principal for CryptosignPrincipal {
    const METHOD: &'static str = "cryptosign";

    fn role(&self) -> &str {
        &self.role
    }

    fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The authenticator vouches for one key, its answer's `pubkey`: the key the client must sign
    /// with.
    fn from_answer(answer: &Answer) -> Result<Self, Denied> {
        Ok(CryptosignPrincipal {
            authorized_keys: answer
                .field_str("pubkey")
                .map(str::to_owned)
                .into_iter()
                .collect(),
            role: answer.field_str("role").unwrap_or_default().to_owned(),
            realm: answer.field_str("realm").map(str::to_owned),
        })
    }
}

/// A public key from its 64 hex digits.
pub fn parse_public_key(hex_key: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    // `decode_to_slice` insists on exactly 64 digits (either case); whether the bytes are a point on
    // the curve is for ring to judge when a signature is checked.
    hex::decode_to_slice(hex_key, &mut key).ok()?;
    Some(key)
}

/// 32 fresh random bytes to sign.
pub fn new_challenge() -> [u8; 32] {
    let mut challenge = [0u8; 32];
    if SystemRandom::new().fill(&mut challenge).is_err() {
        // ring's SystemRandom only fails where the OS has no random source (getrandom missing). A
        // predictable challenge (say, all zeros) would let a captured signature be replayed, so
        // there is no safe value to return: stop instead.
        panic!("the operating system's random number generator is unavailable");
    }
    challenge
}

/// Whether `signature_hex` (AUTHENTICATE.Signature) is `public_key`'s signature of the challenge (XORed
/// with the channel binding data when one is in use).
///
/// Two forms are accepted: the 64-byte Ed25519 signature followed by the 32 signed bytes (96 bytes,
/// what the spec asks for and Autobahn sends), or the bare 64-byte signature.
pub fn verify(
    public_key: &[u8; 32],
    challenge: &[u8; 32],
    channel_binding: Option<&ChannelBinding>,
    signature_hex: &str,
) -> bool {
    let Some(message) = signed_message(challenge, channel_binding) else {
        return false;
    };
    // Only the two lengths we accept are worth decoding.
    if signature_hex.len() != 128 && signature_hex.len() != 192 {
        return false;
    }
    let Ok(decoded) = hex::decode(signature_hex) else {
        return false;
    };
    let signature = match decoded.len() {
        64 => &decoded[..],
        96 => {
            let (signature, echoed) = decoded.split_at(64);
            // The echoed message carries no authority (the signature is what counts), but a client
            // that echoes something else has signed something else: refuse rather than ignore it.
            if !bool::from(echoed.ct_eq(&message)) {
                return false;
            }
            signature
        }
        _ => return false,
    };
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&message, signature)
        .is_ok()
}

/// The 32 bytes the client signs: the challenge, or challenge XOR channel binding data. `None` when
/// the binding data is not 32 bytes long (the spec defines the XOR for 32-byte channel ids only).
fn signed_message(
    challenge: &[u8; 32],
    channel_binding: Option<&ChannelBinding>,
) -> Option<[u8; 32]> {
    let mut message = *challenge;
    if let Some(binding) = channel_binding {
        let data: &[u8; 32] = binding.data.as_slice().try_into().ok()?;
        for (m, d) in message.iter_mut().zip(data) {
            *m ^= d;
        }
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;
    use crate::auth::EndpointAuth;
    use crate::auth::testing::{Hello, endpoint, expect_challenge, expect_denied};

    fn key_pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn public(pair: &Ed25519KeyPair) -> [u8; 32] {
        pair.public_key().as_ref().try_into().unwrap()
    }

    fn binding(data: Vec<u8>) -> ChannelBinding {
        ChannelBinding {
            kind: "tls-server-end-point",
            data,
        }
    }

    /// Autobahn's format: hex(signature || signed message).
    fn sign96(pair: &Ed25519KeyPair, message: &[u8; 32]) -> String {
        format!(
            "{}{}",
            hex::encode(pair.sign(message)),
            hex::encode(message)
        )
    }

    fn xor(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
        let mut out = *a;
        for (o, b) in out.iter_mut().zip(b) {
            *o ^= b;
        }
        out
    }

    #[test]
    fn parse_public_keys() {
        let hex_key = "545efb0a2192db8d43f118e9bf9aee081466e1ef36c708b96ee6f62dddad9122";
        let key = parse_public_key(hex_key).unwrap();
        assert_eq!(hex::encode(key), hex_key);
        assert_eq!(parse_public_key(&hex_key.to_uppercase()), Some(key));
        for bad in [
            "",
            &hex_key[..62],
            &format!("{hex_key}00"),
            &format!("{}zz", &hex_key[..62]),
            &format!(" {}", &hex_key[1..]),
        ] {
            assert_eq!(parse_public_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn challenges_are_fresh() {
        assert_ne!(new_challenge(), new_challenge());
    }

    /// The test vectors of the WAMP spec ("WAMP-Cryptosign", "Test Vectors"): the private key is the
    /// Ed25519 seed, the signature is Autobahn's 96-byte form; `channel_id` is XORed in.
    #[test]
    fn spec_test_vectors() {
        const CHANNEL_ID: &str = "62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff";
        let vectors = [
            (
                None,
                "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                None,
                "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
                "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
                "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            ),
            (
                None,
                "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
                "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
                "7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            ),
            (
                Some(CHANNEL_ID),
                "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "9b6f41540c9b95b4b7b281c3042fa9c54cef43c842d62ea3fd6030fcb66e70b3e80d49d44c29d1635da9348d02ec93f3ed1ef227dfb59a07b580095c2b82f80f9d16ca518aa0c2b707f2b2a609edeca73bca8dd59817a633f35574ac6fd80d00",
            ),
            (
                Some(CHANNEL_ID),
                "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
                "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
                "305aaa3ac25e98f651427688b3fc43fe7d8a68a7ec1d7d61c61517c519bd4a427c3015599d83ca28b4c652333920223844ef0725eb5dc2febfd6af7677b73f01d0852a29b460fc92ec943242ac638a053bbacc200512b18b30d15083cbdc9282",
            ),
            (
                Some(CHANNEL_ID),
                "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
                "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
                "ee3c7644fd8070532bc1fde3d70d742267da545d8c8f03e63bda63f1ad4214f4d2c4bfdb4eb9526def42deeb7e31602a6ff99eba893e0a4ad4d45892ca75e608d2b75e24a189a7f78ca776ba36fc53f6c3e31c32f251f2c524f0a44202f2902d",
            ),
        ];
        for (channel_id, seed, challenge, signature) in vectors {
            let pair = Ed25519KeyPair::from_seed_unchecked(&hex::decode(seed).unwrap()).unwrap();
            let key = public(&pair);
            let challenge: [u8; 32] = hex::decode(challenge).unwrap().try_into().unwrap();
            let binding = channel_id.map(|id| binding(hex::decode(id).unwrap()));
            assert!(verify(&key, &challenge, binding.as_ref(), signature));
            // The bare 64-byte form of the same signature.
            assert!(verify(
                &key,
                &challenge,
                binding.as_ref(),
                &signature[..128]
            ));
            // With the binding left out (or added), the signed message differs.
            let toggled = match binding {
                Some(_) => None,
                None => Some(self::binding(hex::decode(CHANNEL_ID).unwrap())),
            };
            assert!(!verify(
                &key,
                &challenge,
                toggled.as_ref(),
                &signature[..128]
            ));
        }
    }

    #[test]
    fn both_forms_without_binding() {
        let pair = key_pair();
        let challenge = new_challenge();
        assert!(verify(
            &public(&pair),
            &challenge,
            None,
            &sign96(&pair, &challenge)
        ));
        let bare = hex::encode(pair.sign(&challenge));
        assert!(verify(&public(&pair), &challenge, None, &bare));
        assert!(verify(
            &public(&pair),
            &challenge,
            None,
            &bare.to_uppercase()
        ));
    }

    #[test]
    fn both_forms_with_binding() {
        let pair = key_pair();
        let challenge = new_challenge();
        let data = new_challenge().to_vec();
        let cb = binding(data.clone());
        let message = xor(&challenge, &data);
        assert!(verify(
            &public(&pair),
            &challenge,
            Some(&cb),
            &sign96(&pair, &message)
        ));
        assert!(verify(
            &public(&pair),
            &challenge,
            Some(&cb),
            &hex::encode(pair.sign(&message))
        ));
        // Signing the bare challenge does not satisfy a bound session, and vice versa.
        assert!(!verify(
            &public(&pair),
            &challenge,
            Some(&cb),
            &sign96(&pair, &challenge)
        ));
        assert!(!verify(
            &public(&pair),
            &challenge,
            None,
            &sign96(&pair, &message)
        ));
        // Binding data of the wrong length.
        for len in [0, 31, 33, 48] {
            let cb = binding(vec![7; len]);
            assert!(!verify(
                &public(&pair),
                &challenge,
                Some(&cb),
                &sign96(&pair, &challenge)
            ));
        }
    }

    #[test]
    fn wrong_key_or_challenge_fails() {
        let pair = key_pair();
        let other = key_pair();
        let challenge = new_challenge();
        let sig = sign96(&pair, &challenge);
        assert!(!verify(&public(&other), &challenge, None, &sig));
        let other_challenge = new_challenge();
        assert!(!verify(&public(&pair), &other_challenge, None, &sig));
        assert!(!verify(&public(&pair), &other_challenge, None, &sig[..128]));
    }

    #[test]
    fn echoed_message_must_match() {
        let pair = key_pair();
        let challenge = new_challenge();
        // A valid signature of the challenge, followed by some other 32 bytes.
        let sig = format!(
            "{}{}",
            hex::encode(pair.sign(&challenge)),
            hex::encode(new_challenge())
        );
        assert!(!verify(&public(&pair), &challenge, None, &sig));
    }

    #[test]
    fn garbage_fails() {
        let pair = key_pair();
        let challenge = new_challenge();
        let good = sign96(&pair, &challenge);
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for sig in [
            "",
            "zz",
            &good[..190],
            &good[..127],
            &good[..126],
            &format!("{good}00"),
            &format!("{}g", &good[..191]),
            &flipped,
            &"00".repeat(96),
            &"00".repeat(64),
        ] {
            assert!(!verify(&public(&pair), &challenge, None, sig), "{sig:?}");
        }
        // A public key that is not a curve point.
        assert!(!verify(&[0xff; 32], &challenge, None, &good));
    }

    /// An endpoint where `alice` (role `user`) holds `pair`'s key.
    fn endpoint_for(pair: &Ed25519KeyPair) -> EndpointAuth {
        endpoint(&format!(
            r#"{{"cryptosign": {{"type": "static", "principals": {{
                "alice": {{"authorized_keys": ["{}"], "role": "user", "realm": "realm2"}},
                "bob": {{"authorized_keys": [], "role": "user"}}}}}}}}"#,
            hex::encode(public(pair))
        ))
    }

    fn hello(pair: &Ed25519KeyPair) -> Hello {
        Hello::new(&["cryptosign"]).authextra("pubkey", hex::encode(public(pair)).into())
    }

    /// The challenge of a CHALLENGE extra.
    fn challenge_of(extra: &Dict) -> [u8; 32] {
        let mut challenge = [0u8; 32];
        hex::decode_to_slice(extra["challenge"].as_str().unwrap(), &mut challenge).unwrap();
        challenge
    }

    #[tokio::test]
    async fn the_key_holder_is_welcomed_by_authid_or_by_key_alone() {
        let pair = key_pair();
        let auth = endpoint_for(&pair);
        for hello in [hello(&pair).authid("alice"), hello(&pair)] {
            let (pending, extra) = expect_challenge(&auth, hello, "cryptosign").await;
            assert_eq!(extra.len(), 1);
            let signature = sign96(&pair, &challenge_of(&extra));
            let who = pending
                .authenticate(&signature, &Dict::new())
                .await
                .unwrap();
            assert_eq!(
                (who.authid.as_str(), who.authrole.as_str()),
                ("alice", "user")
            );
            assert_eq!((who.authmethod, who.authprovider), ("cryptosign", "static"));
            assert_eq!(who.realm.as_deref(), Some("realm2"));
            assert_eq!(
                who.authextra.get("pubkey"),
                Some(&Value::from(hex::encode(public(&pair))))
            );
        }
    }

    #[tokio::test]
    async fn a_signature_by_another_key_is_denied() {
        let pair = key_pair();
        let auth = endpoint_for(&pair);
        let (pending, extra) = expect_challenge(&auth, hello(&pair), "cryptosign").await;
        let forged = sign96(&key_pair(), &challenge_of(&extra));
        let denied = pending
            .authenticate(&forged, &Dict::new())
            .await
            .unwrap_err();
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
        assert_eq!(denied.message, "invalid signature");
    }

    #[tokio::test]
    async fn a_key_the_principal_does_not_hold_gets_no_challenge() {
        let pair = key_pair();
        let auth = endpoint_for(&pair);
        let stranger = key_pair();
        let denied = expect_denied(&auth, hello(&stranger).authid("alice")).await;
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
        assert_eq!(
            denied.message,
            "the public key is not authorized for this principal"
        );
        let denied = expect_denied(&auth, hello(&pair).authid("bob")).await;
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
        let denied = expect_denied(&auth, hello(&stranger)).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(denied.message, "no principal has this public key");
    }

    #[tokio::test]
    async fn an_unknown_principal_or_a_missing_key_gets_no_challenge() {
        let pair = key_pair();
        let auth = endpoint_for(&pair);
        let denied = expect_denied(&auth, hello(&pair).authid("carol")).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        // Refused before any CHALLENGE, by the method the metrics count it under.
        assert_eq!(denied.method, Some("cryptosign"));
        assert_eq!(denied.message, r#"no cryptosign principal "carol""#);
        let denied = expect_denied(&auth, Hello::new(&["cryptosign"]).authid("alice")).await;
        assert_eq!(denied.reason, errors::AUTHENTICATION_FAILED);
        let not_hex = Hello::new(&["cryptosign"]).authextra("pubkey", "zz".into());
        let denied = expect_denied(&auth, not_hex).await;
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
    }

    #[tokio::test]
    async fn a_bound_challenge_is_signed_xored_with_the_binding_data() {
        let pair = key_pair();
        let auth = endpoint_for(&pair);
        let data: Vec<u8> = (100u8..132).collect();
        let bound = hello(&pair)
            .authextra("channel_binding", "tls-server-end-point".into())
            .conn(|c| c.channel_binding = Some(binding(data.clone())));
        let (pending, extra) = expect_challenge(&auth, bound, "cryptosign").await;
        assert_eq!(
            extra["channel_binding"],
            Value::from("tls-server-end-point")
        );
        let signature = sign96(&pair, &xor(&challenge_of(&extra), &data));
        assert!(pending.authenticate(&signature, &Dict::new()).await.is_ok());
    }
}
