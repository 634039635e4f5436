//! The session task against a scripted router on an in-memory transport: what goes on the wire
//! in the cases a real router does not provoke on demand.

use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::{Dict, Message, MessageType, Payload, Serializer, Value, codec, errors};
use switchboard_transport::{Transport, TransportError};
use tokio::sync::mpsc;

use crate::{Args, CloseReason, Error, JoinOptions, RegisterOptions, Session};

/// The client's end of an in-memory connection.
struct Pipe {
    incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
}

impl Transport for Pipe {
    fn serializer(&self) -> Serializer {
        Serializer::Json
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        None
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        Ok(self.incoming.recv().await)
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        self.outgoing
            .send(msg)
            .await
            .map_err(|_| TransportError::Protocol("the scripted router is gone".into()))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn close(&mut self) {
        self.incoming.close();
    }
}

/// The scripted router's end.
struct Router {
    to_client: mpsc::Sender<Bytes>,
    from_client: mpsc::Receiver<Bytes>,
}

impl Router {
    async fn send(&self, msg: &Message) {
        let bytes = codec::encode(Serializer::Json, msg).unwrap();
        self.to_client.send(bytes).await.unwrap();
    }

    /// The client's next message; `None` once it closed the connection.
    async fn recv(&mut self) -> Option<Message> {
        let bytes = tokio::time::timeout(Duration::from_secs(10), self.from_client.recv())
            .await
            .expect("the client answers within 10 s")?;
        Some(codec::decode(Serializer::Json, &bytes).unwrap())
    }
}

fn pipe() -> (Pipe, Router) {
    let (to_client, incoming) = mpsc::channel(64);
    let (outgoing, from_client) = mpsc::channel(64);
    (
        Pipe { incoming, outgoing },
        Router {
            to_client,
            from_client,
        },
    )
}

/// A session joined through the scripted router, which answers HELLO with WELCOME.
async fn joined(join: JoinOptions) -> (Session, Router) {
    let (pipe, mut router) = pipe();
    let client = tokio::spawn(async move { Session::join(pipe, &join).await });
    assert!(matches!(router.recv().await, Some(Message::Hello { .. })));
    router
        .send(&Message::Welcome {
            session: 42,
            details: Dict::new(),
        })
        .await;
    (client.await.unwrap().unwrap(), router)
}

#[tokio::test]
async fn a_ticket_challenge_is_answered_and_the_welcome_gives_the_session() {
    let (pipe, mut router) = pipe();
    let join = JoinOptions::new("realm1").with_ticket("joe", "secret");
    let client = tokio::spawn(async move { Session::join(pipe, &join).await });
    let Some(Message::Hello { details, .. }) = router.recv().await else {
        panic!("HELLO")
    };
    assert_eq!(details["authid"], Value::from("joe"));
    router
        .send(&Message::Challenge {
            method: "ticket".into(),
            extra: Dict::new(),
        })
        .await;
    match router.recv().await {
        Some(Message::Authenticate { signature, .. }) => assert_eq!(signature, "secret"),
        other => panic!("expected AUTHENTICATE, got {other:?}"),
    }
    let mut welcome = Dict::new();
    welcome.insert("authid".into(), "joe".into());
    welcome.insert("realm".into(), "realm2".into());
    router
        .send(&Message::Welcome {
            session: 7,
            details: welcome,
        })
        .await;
    let s = client.await.unwrap().unwrap();
    assert_eq!((s.id(), s.authid(), s.realm()), (7, Some("joe"), "realm2"));
}

#[tokio::test]
async fn a_challenge_the_client_cannot_answer_is_aborted() {
    let (pipe, mut router) = pipe();
    let join = JoinOptions::new("realm1").with_ticket("joe", "secret");
    let client = tokio::spawn(async move { Session::join(pipe, &join).await });
    router.recv().await;
    router
        .send(&Message::Challenge {
            method: "wampcra".into(),
            extra: Dict::new(),
        })
        .await;
    match router.recv().await {
        Some(Message::Abort { reason, .. }) => {
            assert_eq!(reason, errors::AUTHENTICATION_FAILED)
        }
        other => panic!("expected ABORT, got {other:?}"),
    }
    assert!(matches!(
        client.await.unwrap(),
        Err(Error::Authentication(_))
    ));
}

#[tokio::test]
async fn a_router_goodbye_is_answered_with_goodbye_and_out() {
    let (s, mut router) = joined(JoinOptions::new("realm1")).await;
    router
        .send(&Message::goodbye(errors::SYSTEM_SHUTDOWN))
        .await;
    match router.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, errors::GOODBYE_AND_OUT),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    assert_eq!(
        s.closed().await.router_reason(),
        Some(errors::SYSTEM_SHUTDOWN)
    );
    assert!(router.recv().await.is_none(), "the connection is closed");
}

#[tokio::test]
async fn leave_says_close_realm_and_ends_with_the_routers_goodbye() {
    let (s, mut router) = joined(JoinOptions::new("realm1")).await;
    let leaving = tokio::spawn({
        let s = s.clone();
        async move { s.leave().await }
    });
    match router.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, "wamp.close.close_realm"),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    // Nothing else is handled once GOODBYE is out (spec, "Session Closing").
    router
        .send(&Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
    router
        .send(&Message::goodbye(errors::GOODBYE_AND_OUT))
        .await;
    leaving.await.unwrap().unwrap();
    assert_eq!(s.closed().await, CloseReason::Left);
    assert!(
        router.recv().await.is_none(),
        "no GOODBYE to a GOODBYE reply"
    );
}

#[tokio::test]
async fn dropping_every_handle_leaves_the_realm() {
    let (s, mut router) = joined(JoinOptions::new("realm1")).await;
    drop(s);
    match router.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, "wamp.close.close_realm"),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
}

#[tokio::test]
async fn an_interrupt_for_an_invocation_that_answered_is_ignored() {
    let (s, mut router) = joined(JoinOptions::new("realm1")).await;
    let registering = tokio::spawn({
        let s = s.clone();
        async move {
            s.register("com.example.quick", RegisterOptions::default(), |i| async {
                Ok(i.into_args())
            })
            .await
        }
    });
    let Some(Message::Register { request, .. }) = router.recv().await else {
        panic!("REGISTER")
    };
    router
        .send(&Message::Registered {
            request,
            registration: 5,
        })
        .await;
    assert_eq!(registering.await.unwrap().unwrap(), 5);
    router
        .send(&Message::Invocation {
            request: 9,
            registration: 5,
            details: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
    assert!(matches!(
        router.recv().await,
        Some(Message::Yield { request: 9, .. })
    ));
    router
        .send(&Message::Interrupt {
            request: 9,
            options: Dict::new(),
        })
        .await;
    // An unknown registration gets ERROR; and it is the next thing the client says.
    router
        .send(&Message::Invocation {
            request: 10,
            registration: 6,
            details: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
    match router.recv().await {
        Some(Message::Error {
            request_type,
            request: 10,
            error,
            ..
        }) => {
            assert_eq!(request_type, MessageType::Invocation.code());
            assert_eq!(error, errors::NO_SUCH_REGISTRATION);
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    assert!(!s.is_closed());
}

#[tokio::test]
async fn a_second_welcome_is_a_protocol_violation_that_fails_pending_calls() {
    let (s, mut router) = joined(JoinOptions::new("realm1")).await;
    let call = tokio::spawn({
        let s = s.clone();
        async move { s.call("com.example.p", Args::default()).await }
    });
    assert!(matches!(router.recv().await, Some(Message::Call { .. })));
    router
        .send(&Message::Welcome {
            session: 43,
            details: Dict::new(),
        })
        .await;
    match router.recv().await {
        Some(Message::Abort { reason, .. }) => assert_eq!(reason, errors::PROTOCOL_VIOLATION),
        other => panic!("expected ABORT, got {other:?}"),
    }
    assert!(matches!(call.await.unwrap(), Err(Error::Closed)));
    assert!(matches!(
        s.closed().await,
        CloseReason::ProtocolViolation(_)
    ));
}
