//! [`Args`]: the positional and keyword arguments of calls, results, events and errors, decoded
//! into [`Value`]s, and their conversion to and from the wire's [`Payload`].

use switchboard_proto::{Dict, Payload, RawValue, Serializer, Value};

use crate::Error;

/// Positional and keyword arguments, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Positional arguments (`Arguments|list`).
    pub args: Vec<Value>,
    /// Keyword arguments (`ArgumentsKw|dict`).
    pub kwargs: Dict,
}

impl Args {
    /// Positional and keyword arguments.
    pub fn new(args: Vec<Value>, kwargs: Dict) -> Self {
        Self { args, kwargs }
    }

    /// Positional arguments only.
    pub fn positional(args: Vec<Value>) -> Self {
        Self {
            args,
            kwargs: Dict::new(),
        }
    }

    /// Whether there are neither positional nor keyword arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty() && self.kwargs.is_empty()
    }

    /// The payload of a message in serializer `s`. Empty arguments are left out of the message;
    /// an empty positional list is only written when keyword arguments follow it, as the
    /// message formats need it there.
    pub(crate) fn into_payload(self, s: Serializer) -> Result<Payload, Error> {
        let enc = |v: Value| {
            RawValue::from_value(s, &v)
                .map_err(|e| Error::Protocol(format!("cannot encode arguments: {e}")))
        };
        Ok(match (self.args.is_empty(), self.kwargs.is_empty()) {
            (true, true) => Payload::EMPTY,
            (false, true) => Payload {
                args: Some(enc(Value::List(self.args))?),
                kwargs: None,
            },
            _ => Payload {
                args: Some(enc(Value::List(self.args))?),
                kwargs: Some(enc(Value::Dict(self.kwargs))?),
            },
        })
    }

    /// Decodes a received payload. An `Arguments` element that is not a list (payload passthru
    /// mode carries one opaque value there) becomes the single positional argument.
    pub(crate) fn from_payload(p: &Payload) -> Result<Self, Error> {
        let dec = |r: &RawValue| {
            r.to_value()
                .map_err(|e| Error::Protocol(format!("cannot decode arguments: {e}")))
        };
        let args = match &p.args {
            Some(r) => match dec(r)? {
                Value::List(l) => l,
                other => vec![other],
            },
            None => Vec::new(),
        };
        let kwargs = match &p.kwargs {
            Some(r) => match dec(r)? {
                Value::Dict(d) => d,
                other => {
                    return Err(Error::Protocol(format!(
                        "ArgumentsKw must be a dict, got {}",
                        other.kind()
                    )));
                }
            },
            None => Dict::new(),
        };
        Ok(Self { args, kwargs })
    }
}

impl From<Vec<Value>> for Args {
    fn from(args: Vec<Value>) -> Self {
        Self::positional(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_every_serializer() {
        let mut kwargs = Dict::new();
        kwargs.insert("k".into(), Value::Int(-3));
        for s in Serializer::ALL {
            for args in [
                Args::default(),
                Args::positional(vec!["a".into(), 1u64.into()]),
                Args::new(Vec::new(), kwargs.clone()),
                Args::new(vec![Value::Null], kwargs.clone()),
            ] {
                let payload = args.clone().into_payload(s).unwrap();
                assert_eq!(payload.is_empty(), args.is_empty());
                assert_eq!(Args::from_payload(&payload).unwrap(), args, "{s:?}");
            }
        }
    }

    #[test]
    fn keyword_arguments_that_are_not_a_dict_are_refused() {
        let payload = Payload {
            args: None,
            kwargs: Some(RawValue::from_value(Serializer::Json, &Value::UInt(1)).unwrap()),
        };
        assert!(matches!(
            Args::from_payload(&payload),
            Err(Error::Protocol(_))
        ));
    }
}
