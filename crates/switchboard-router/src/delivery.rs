//! What the broker and the dealer share to build messages for peers and deliver them: encoding a
//! message once per serializer, the disclosed identity and passthru details that EVENT, INVOCATION
//! and RESULT carry, and ERROR replies with an explanation.

use bytes::Bytes;
use switchboard_proto::codec::{self, EncodeError};
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, Serializer, Value};

use crate::peer::Peer;

/// The payload passthru options (spec, "Payload Passthru Mode", and autobahn's older `enc_*`
/// names) a receiver needs to read the payload; the router forwards them and never looks inside.
const PASSTHRU_KEYS: [&str; 7] = [
    "ppt_scheme",
    "ppt_serializer",
    "ppt_cipher",
    "ppt_keyid",
    "enc_algo",
    "enc_serializer",
    "enc_key",
];

/// Copies the payload passthru options of a PUBLISH, CALL or YIELD into the details of the EVENT,
/// INVOCATION or RESULT it becomes.
pub(crate) fn copy_passthru(options: &Dict, details: &mut Dict) {
    if !switchboard_proto::options::is_passthru(options) {
        return;
    }
    for key in PASSTHRU_KEYS {
        if let Some(v) = options.get(key) {
            details.insert(key.to_owned(), v.clone());
        }
    }
}

/// The disclosed identity of `peer` under `prefix` (spec, "Publisher Identification" and "Caller
/// Identification"): `{prefix}`, `{prefix}_authid`, `{prefix}_authrole`.
pub(crate) fn identity_details(peer: &Peer, prefix: &str) -> Dict {
    let identity = peer.identity();
    let mut d = Dict::new();
    d.insert(prefix.to_owned(), identity.session.0.into());
    d.insert(format!("{prefix}_authid"), identity.authid.as_str().into());
    d.insert(
        format!("{prefix}_authrole"),
        identity.authrole.as_str().into(),
    );
    d
}

/// The key a `forward_for` hop carries, beside the spec's `session`, `authid` and `authrole`: the
/// node id of the router the message came from at that hop (Switchboard's; Crossbar ignores it).
pub const HOP_NODE_KEY: &str = "x_node";

/// The key of the first `forward_for` hop that names the publication on the router it was first
/// published on (Switchboard's), so that routers can drop an event that reaches them twice.
pub const HOP_PUBLICATION_KEY: &str = "x_publication";

/// The black- and whitelists a link gets in EVENT.Details to publish with on the other router
/// (the lists of session ids too: a cluster's nodes share one session id space).
pub const PASSED_ON_TO_LINKS: [&str; 6] = [
    "exclude",
    "eligible",
    "exclude_authid",
    "exclude_authrole",
    "eligible_authid",
    "eligible_authrole",
];

/// The first `forward_for` hop of a message a link received: the sender as the details disclosed
/// it to the link under `prefix` (`publisher` or `caller`), in the hop's keys (`session`,
/// `authid`, `authrole`), the inverse of [`identity_details`].
pub fn hop_from_details(details: &Dict, prefix: &str) -> Dict {
    let mut hop = Dict::new();
    for (from, to) in [
        (prefix.to_owned(), "session"),
        (format!("{prefix}_authid"), "authid"),
        (format!("{prefix}_authrole"), "authrole"),
    ] {
        if let Some(v) = details.get(&from) {
            hop.insert(to.into(), v.clone());
        }
    }
    hop
}

/// The detail a link receives beside the full identity when ordinary receivers would have been
/// told who published or called, so that the far router can disclose as this one would.
pub const DISCLOSE_KEY: &str = "x_disclose";

/// A PUBLISH or CALL that a router link sent on behalf of a session of another router
/// (`forward_for`, accepted only from links): who that session is, and every hop so far with the
/// link's own appended, as receivers are told (Crossbar's shape).
#[derive(Debug)]
pub(crate) struct Forwarded {
    hops: Vec<Value>,
}

impl Forwarded {
    /// The forwarding of a message `sender` sent with `options`, when the sender is a link and
    /// names a first hop.
    pub(crate) fn of(options: &Dict, sender: &Peer) -> Option<Self> {
        let link = sender.link()?;
        let list = options.get("forward_for")?.as_list()?;
        list.first()?.as_dict()?;
        let identity = sender.identity();
        let mut hop = Dict::new();
        hop.insert("session".into(), identity.session.0.into());
        hop.insert("authid".into(), identity.authid.as_str().into());
        hop.insert("authrole".into(), identity.authrole.as_str().into());
        if !link.node.is_empty() {
            hop.insert(HOP_NODE_KEY.into(), link.node.as_str().into());
        }
        let mut hops = list.to_vec();
        hops.push(Value::Dict(hop));
        Some(Self { hops })
    }

    /// The session the message was first sent by, disclosed under `prefix` as
    /// [`identity_details`] does for a local one.
    pub(crate) fn identity_details(&self, prefix: &str) -> Dict {
        let origin = self.hops.first().and_then(Value::as_dict);
        let field = |key: &str| origin.and_then(|o| o.get(key)).cloned();
        let mut d = Dict::new();
        if let Some(session) = field("session") {
            d.insert(prefix.to_owned(), session);
        }
        if let Some(authid) = field("authid") {
            d.insert(format!("{prefix}_authid"), authid);
        }
        if let Some(authrole) = field("authrole") {
            d.insert(format!("{prefix}_authrole"), authrole);
        }
        d
    }

    /// The router and publication id an event was first published with, where the first hop
    /// says.
    pub(crate) fn origin(&self) -> Option<(String, Id)> {
        let first = self.hops.first()?.as_dict()?;
        let node = first.get(HOP_NODE_KEY)?.as_str()?;
        let publication = first.get(HOP_PUBLICATION_KEY)?.as_u64()?;
        Some((node.to_owned(), publication))
    }

    /// `forward_for` as receivers get it.
    pub(crate) fn hops(&self) -> Value {
        Value::List(self.hops.clone())
    }

    /// Whether the message may go on to `receiver`: anyone but a link that carries only its own
    /// router's traffic (`mesh`), or one to a router the message has already been through (which
    /// would make a loop).
    pub(crate) fn may_reach(&self, receiver: &Peer) -> bool {
        let Some(link) = receiver.link() else {
            return true;
        };
        link.relay && !self.visited(&link.node)
    }

    /// Whether a hop names the router `node`.
    fn visited(&self, node: &str) -> bool {
        !node.is_empty()
            && self.hops.iter().any(|hop| {
                hop.as_dict()
                    .and_then(|h| h.get(HOP_NODE_KEY))
                    .and_then(Value::as_str)
                    == Some(node)
            })
    }
}

/// The details a link receiver gets about who sent a message (`prefix`: `publisher` or `caller`):
/// always the identity, the hops when the message was forwarded, and whether ordinary receivers
/// were told.
pub(crate) fn link_details(
    sender: Option<&Peer>,
    forwarded: Option<&Forwarded>,
    prefix: &str,
    disclose: bool,
) -> Dict {
    let mut d = match (forwarded, sender) {
        (Some(f), _) => f.identity_details(prefix),
        (None, Some(p)) => identity_details(p, prefix),
        (None, None) => Dict::new(),
    };
    if let Some(f) = forwarded {
        d.insert("forward_for".into(), f.hops());
    }
    if disclose {
        d.insert(DISCLOSE_KEY.into(), true.into());
    }
    d
}

/// The slot of a serializer in per-serializer arrays.
fn slot(serializer: Serializer) -> usize {
    match serializer {
        Serializer::Json => 0,
        Serializer::MsgPack => 1,
        Serializer::Cbor => 2,
    }
}

/// A publication's payload in every serializer its receivers speak, converted before any of them
/// gets the event (spec, "Serializers": conversion between serializers): either the payload
/// converts for every receiver, or the publication is refused and nobody gets it.
pub(crate) struct PayloadPerSerializer {
    /// The serializer the publisher wrote the payload in (`None`: no payload, nothing to convert).
    native: Option<Serializer>,
    converted: [Option<Payload>; 3],
}

impl PayloadPerSerializer {
    /// Converts `payload` into each of `serializers` it is not already in.
    pub(crate) fn convert(
        payload: &Payload,
        serializers: impl IntoIterator<Item = Serializer>,
    ) -> Result<Self, EncodeError> {
        let native = payload
            .args
            .as_ref()
            .or(payload.kwargs.as_ref())
            .map(|raw| raw.serializer());
        let mut converted: [Option<Payload>; 3] = [None, None, None];
        if let Some(native) = native {
            for serializer in serializers {
                let slot = &mut converted[slot(serializer)];
                if serializer == native || slot.is_some() {
                    continue;
                }
                let to = |raw: &Option<switchboard_proto::RawValue>| {
                    raw.as_ref()
                        .map(|r| r.to_serializer(serializer))
                        .transpose()
                };
                *slot = Some(Payload {
                    args: to(&payload.args)?,
                    kwargs: to(&payload.kwargs)?,
                });
            }
        }
        Ok(Self { native, converted })
    }
}

/// An EVENT encoded lazily, at most once per serializer, with the payload already converted for
/// that serializer ([`PayloadPerSerializer`]).
pub(crate) struct EncodedEvent<'a> {
    /// The EVENT with the payload as published.
    event: &'a Message,
    payloads: &'a PayloadPerSerializer,
    cache: [Option<Option<Bytes>>; 3],
}

impl<'a> EncodedEvent<'a> {
    pub(crate) fn new(event: &'a Message, payloads: &'a PayloadPerSerializer) -> Self {
        Self {
            event,
            payloads,
            cache: [None, None, None],
        }
    }

    /// The EVENT in `serializer`; `None` only if encoding a message the router built failed
    /// (logged as an internal fault).
    pub(crate) fn get(&mut self, serializer: Serializer) -> Option<Bytes> {
        let (event, payloads) = (self.event, self.payloads);
        self.cache[slot(serializer)]
            .get_or_insert_with(|| {
                let converted = payloads.converted[slot(serializer)].as_ref();
                let encoded = match (converted, event) {
                    (Some(payload), Message::Event { .. })
                        if payloads.native != Some(serializer) =>
                    {
                        let mut in_serializer = event.clone();
                        if let Message::Event { payload: p, .. } = &mut in_serializer {
                            *p = payload.clone();
                        }
                        codec::encode(serializer, &in_serializer)
                    }
                    _ => codec::encode(serializer, event),
                };
                encoded
                    .inspect_err(|e| tracing::error!("cannot encode an EVENT: {e}"))
                    .ok()
            })
            .clone()
    }
}

/// An ERROR with one string argument explaining it.
pub(crate) fn error_with_text(
    request_type: MessageType,
    request: Id,
    uri: &str,
    text: &str,
    serializer: switchboard_proto::Serializer,
) -> Message {
    let args = switchboard_proto::Value::List(vec![text.into()]);
    let payload = Payload {
        args: codec::RawValue::from_value(serializer, &args).ok(),
        kwargs: None,
    };
    Message::Error {
        request_type: request_type.code(),
        request,
        details: Dict::new(),
        error: uri.to_owned(),
        payload,
    }
}

/// Encodes `msg` for `peer` and queues it (a full outbox marks the peer slow; see `peer`).
pub(crate) fn send_to(peer: &Peer, msg: Message) {
    if let Some(bytes) = encode_or_log(peer, msg) {
        let _ = peer.send(bytes);
    }
}

/// Encodes a router-made message. These carry only strings we wrote, so encoding cannot fail in
/// practice; if it ever does, that is logged as an internal fault instead of panicking.
pub(crate) fn encode_or_log(peer: &Peer, msg: Message) -> Option<bytes::Bytes> {
    codec::encode(peer.serializer(), &msg)
        .inspect_err(|e| {
            tracing::error!(session = peer.id().0, "cannot encode router message: {e}")
        })
        .ok()
}
