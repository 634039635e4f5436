//! In-process sessions and hosted components: they run the same session code as socket sessions,
//! so they are authorized, listed, announced, killed, shut down and cleaned up like any other.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Via, eventually, start_router_with};
use switchboard_client::{
    Args, CloseReason, Error, PublishOptions, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Serializer, Value, errors};
use switchboard_router::embed::{Component, ComponentError, TrustedIdentity};
use switchboard_router::peer::SessionId;

const PATIENCE: Duration = Duration::from_secs(10);

/// Realm `realm1` with the roles these tests use: `anonymous` (socket clients) may do anything;
/// `backend` may register and subscribe under `com.example.`; `reader` may only call.
const REALMS: &str = r#"[{"name": "realm1", "roles": [
    {"name": "anonymous", "permissions": [
        {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]},
    {"name": "backend", "permissions": [
        {"uri": "com.example.", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}},
        {"uri": "wamp.session.", "match": "prefix", "allow": {"call": true}}]},
    {"name": "reader", "permissions": [
        {"uri": "com.example.", "match": "prefix", "allow": {"call": true}}]}]}]"#;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("within the test's patience")
}

fn first(args: &Args) -> Value {
    args.args.first().cloned().unwrap_or(Value::Null)
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_list()
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// A component that registers `com.example.double` and keeps the events of `com.example.news`
/// it receives in a list.
struct Backend {
    news: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Component for Backend {
    async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
        session
            .register(
                "com.example.double",
                RegisterOptions::default(),
                |call| async move {
                    let n = call
                        .positional()
                        .first()
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    Ok(Args::positional(vec![(n * 2).into()]))
                },
            )
            .await?;
        let mut events = session
            .subscribe("com.example.news", SubscribeOptions::default())
            .await?;
        let news = self.news.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                let item = first(&event.args);
                news.lock().expect("news").push(item);
            }
        });
        Ok(())
    }
}

#[tokio::test]
async fn a_hosted_component_serves_calls_and_receives_events_from_socket_clients() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let news = Arc::new(std::sync::Mutex::new(Vec::new()));
    let component = node
        .in_process()
        .host(
            TrustedIdentity::new("realm1", "backend-1", "backend"),
            Backend { news: news.clone() },
        )
        .await
        .expect("the component joins");
    assert_eq!(component.authrole(), Some("backend"));
    assert_eq!(component.authmethod(), Some("trusted"));

    let client = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    // on_join runs on its own task: wait for its registration.
    let mut answer = Err(Error::Closed);
    for _ in 0..200 {
        answer = client
            .call("com.example.double", Args::positional(vec![21u64.into()]))
            .await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        first(&answer.expect("the call succeeds")),
        Value::from(42u64)
    );

    client
        .publish(
            "com.example.news",
            Args::positional(vec!["hello".into()]),
            PublishOptions::acknowledged(),
        )
        .await
        .expect("publish");
    eventually(|| news.lock().expect("news").len() == 1).await;
    assert_eq!(news.lock().expect("news")[0], Value::from("hello"));
    router.shutdown().await;
}

#[tokio::test]
async fn an_in_process_session_is_authorized_by_its_role_like_any_other() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let reader = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "reader-1", "reader"))
        .await
        .expect("join");
    let denied = reader
        .register(
            "com.example.secret",
            RegisterOptions::default(),
            common::echo,
        )
        .await;
    assert!(
        matches!(&denied, Err(Error::Wamp { uri, .. }) if uri == errors::NOT_AUTHORIZED),
        "{denied:?}"
    );
    let realm = node.realms().get("realm1").expect("realm1");
    assert_eq!(realm.registration_count(), 0);

    // A role the realm does not define is refused at join, with the router's ABORT.
    let unknown = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "x", "no-such-role"))
        .await;
    assert!(
        matches!(&unknown, Err(Error::Aborted { reason, .. }) if reason == errors::NO_SUCH_ROLE),
        "{unknown:?}"
    );
    // The built-in trusted role may do anything.
    let trusted = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "ops", "trusted"))
        .await
        .expect("join");
    trusted
        .register("anything.at.all", RegisterOptions::default(), common::echo)
        .await
        .expect("the trusted role may register anything");
    router.shutdown().await;
}

#[tokio::test]
async fn the_meta_api_lists_in_process_sessions_unless_they_are_hidden() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let observer = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let mut joins = observer
        .subscribe("wamp.session.on_join", SubscribeOptions::default())
        .await
        .expect("subscribe");

    let listed = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-1", "backend"))
        .await
        .expect("join");
    let registration = listed
        .register(
            "com.example.listed",
            RegisterOptions::default(),
            common::echo,
        )
        .await
        .expect("register");
    let hidden = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-2", "backend").hidden())
        .await
        .expect("join");

    let joined = within(joins.next())
        .await
        .expect("an on_join event")
        .expect("not lagged");
    let details = first(&joined.args);
    let details = details.as_dict().expect("session details");
    assert_eq!(
        details.get("session").and_then(Value::as_u64),
        Some(listed.id())
    );
    assert_eq!(
        details.get("authid").and_then(Value::as_str),
        Some("backend-1")
    );
    assert_eq!(
        details.get("authmethod").and_then(Value::as_str),
        Some("trusted")
    );

    let sessions = ids(&first(
        &observer
            .call("wamp.session.list", Args::default())
            .await
            .expect("session.list"),
    ));
    assert!(sessions.contains(&listed.id()), "{sessions:?}");
    assert!(!sessions.contains(&hidden.id()), "{sessions:?}");
    let registrations = first(
        &observer
            .call("wamp.registration.list", Args::default())
            .await
            .expect("registration.list"),
    );
    let exact = registrations
        .as_dict()
        .and_then(|d| d.get("exact"))
        .map(ids)
        .unwrap_or_default();
    assert!(exact.contains(&registration), "{registrations:?}");

    // A hidden session has no on_join: the next join event is a later listed session's.
    let later = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-3", "backend"))
        .await
        .expect("join");
    let next = within(joins.next())
        .await
        .expect("an on_join event")
        .expect("not lagged");
    assert_eq!(
        first(&next.args)
            .as_dict()
            .and_then(|d| d.get("session"))
            .and_then(Value::as_u64),
        Some(later.id())
    );
    assert!(!hidden.is_closed());
    let realm = node.realms().get("realm1").expect("realm1");
    assert!(realm.session(SessionId(hidden.id())).is_none());
    router.shutdown().await;
}

#[tokio::test]
async fn kill_and_shutdown_end_in_process_sessions_with_the_right_goodbye() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let victim = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-1", "backend"))
        .await
        .expect("join");
    victim
        .register(
            "com.example.victim",
            RegisterOptions::default(),
            common::echo,
        )
        .await
        .expect("register");
    let admin = router.connect(Via::WebSocketTcp, Serializer::MsgPack).await;
    admin
        .call(
            "wamp.session.kill",
            Args::positional(vec![victim.id().into()]),
        )
        .await
        .expect("kill");
    let why = within(victim.closed()).await;
    assert_eq!(why.router_reason(), Some(errors::CLOSE_KILLED), "{why:?}");
    let realm = node.realms().get("realm1").expect("realm1");
    eventually(|| realm.registration_count() == 0).await;

    let survivor = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-2", "backend"))
        .await
        .expect("join");
    within(router.shutdown()).await;
    let why = within(survivor.closed()).await;
    assert_eq!(
        why.router_reason(),
        Some(errors::SYSTEM_SHUTDOWN),
        "{why:?}"
    );
}

#[tokio::test]
async fn an_in_process_sessions_testament_is_published_when_it_ends() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let observer = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut wills = observer
        .subscribe("com.example.will", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let leaving = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend-1", "backend"))
        .await
        .expect("join");
    leaving
        .call(
            "wamp.session.add_testament",
            Args::positional(vec![
                "com.example.will".into(),
                Value::List(vec!["gone".into()]),
                Value::Dict(Default::default()),
            ]),
        )
        .await
        .expect("add_testament");
    leaving.leave().await.expect("leave");
    let will = within(wills.next())
        .await
        .expect("the testament")
        .expect("not lagged");
    assert_eq!(first(&will.args), Value::from("gone"));
    router.shutdown().await;
}

/// A component whose `on_join` registers a procedure, then panics.
struct PanicsInOnJoin {
    registered: Arc<AtomicBool>,
}

impl Component for PanicsInOnJoin {
    async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
        session
            .register(
                "com.example.doomed",
                RegisterOptions::default(),
                common::echo,
            )
            .await?;
        self.registered.store(true, Ordering::SeqCst);
        panic!("the component fails on purpose");
    }
}

/// A component whose procedure panics when called.
struct PanicsInHandler;

impl Component for PanicsInHandler {
    async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
        session
            .register(
                "com.example.explode",
                RegisterOptions::default(),
                |_| async move {
                    if true {
                        panic!("the handler fails on purpose");
                    }
                    Ok(Args::default())
                },
            )
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_component_that_panics_ends_only_its_own_session() {
    let router = start_router_with(Some(REALMS)).await;
    let node = router.node.as_ref().expect("node");
    let realm = node.realms().get("realm1").expect("realm1");
    let healthy = node
        .in_process()
        .join(TrustedIdentity::new("realm1", "healthy", "backend"))
        .await
        .expect("join");
    healthy
        .register(
            "com.example.alive",
            RegisterOptions::default(),
            common::echo,
        )
        .await
        .expect("register");

    let registered = Arc::new(AtomicBool::new(false));
    let doomed = node
        .in_process()
        .host(
            TrustedIdentity::new("realm1", "doomed", "backend"),
            PanicsInOnJoin {
                registered: registered.clone(),
            },
        )
        .await
        .expect("join");
    let why = within(doomed.closed()).await;
    assert!(registered.load(Ordering::SeqCst));
    assert_eq!(
        why,
        CloseReason::Left,
        "the panicking component's session left"
    );

    let exploding = node
        .in_process()
        .host(
            TrustedIdentity::new("realm1", "exploding", "backend"),
            PanicsInHandler,
        )
        .await
        .expect("join");
    let caller = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut failed = Err(Error::Closed);
    for _ in 0..200 {
        failed = caller.call("com.example.explode", Args::default()).await;
        if !matches!(&failed, Err(Error::Wamp { uri, .. }) if uri == errors::NO_SUCH_PROCEDURE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        matches!(&failed, Err(Error::Wamp { uri, .. }) if uri == errors::CANCELED),
        "the caller learns the callee went away: {failed:?}"
    );
    let why = within(exploding.closed()).await;
    assert!(
        matches!(why, CloseReason::HandlerPanicked { .. }),
        "{why:?}"
    );

    // Only those two sessions ended: the router and the healthy component go on.
    eventually(|| realm.registration_count() == 1).await;
    let answer = caller
        .call("com.example.alive", Args::positional(vec![7u64.into()]))
        .await
        .expect("the healthy component still answers");
    assert_eq!(first(&answer), Value::from(7u64));
    assert!(!healthy.is_closed());
    router.shutdown().await;
}
