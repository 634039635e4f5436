//! The error and close reason URIs the WAMP spec predefines, as constants.

/// ABORT/ERROR: the peer sent something the protocol does not allow.
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
/// ABORT: HELLO named a realm the router does not have.
pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
/// ABORT: none of the authentication methods the client offered is available.
pub const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
/// ABORT: authentication could not be carried out (a technical failure, such as a dynamic
/// authenticator that is missing, fails or answers nonsense).
pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
/// ERROR/ABORT: the action is not allowed for the session's role.
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
/// ERROR: a URI in the request is not valid.
pub const INVALID_URI: &str = "wamp.error.invalid_uri";
/// ERROR: CALL to a procedure nobody registered.
pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
/// ERROR: REGISTER of a procedure that is already registered.
pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
/// ERROR: UNREGISTER of a registration the session does not hold.
pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
/// ERROR: UNSUBSCRIBE of a subscription the session does not hold.
pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
/// ERROR: the arguments could not be handled (for example, converted to the receiver's serializer).
pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
/// ERROR: the call was canceled (for example, because its callee left).
pub const CANCELED: &str = "wamp.error.canceled";
/// ERROR: the router could not deliver the request because the receiver cannot take more.
pub const UNAVAILABLE: &str = "wamp.error.unavailable";
/// ERROR: the payload is larger than the receiver accepts.
pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";

/// GOODBYE: the session is closed normally by its peer.
pub const CLOSE_NORMAL: &str = "wamp.close.normal";
/// GOODBYE: the reply to a GOODBYE.
pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
/// GOODBYE/ABORT: the router is shutting down.
pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
/// ABORT: the session was closed because it could not keep up with its messages.
pub const SLOW_CONSUMER: &str = "wamp.close.slow_consumer";
/// ERROR: REGISTER with an invocation policy other than the existing shared registration's.
pub const PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY: &str =
    "wamp.error.procedure_exists_with_different_invocation_policy";
/// ERROR: the call timed out (spec, "Call Timeouts").
pub const TIMEOUT: &str = "wamp.error.timeout";
/// ERROR: the meta API was asked about a session that does not exist.
pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
/// GOODBYE: the session was killed through the meta API.
pub const CLOSE_KILLED: &str = "wamp.close.killed";
/// ERROR: the request needs a feature the receiving peer does not support.
pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
/// ABORT: the authentication the client presented was denied (a wrong ticket, secret, password or
/// signature; an expired or forged token).
pub const AUTHENTICATION_DENIED: &str = "wamp.error.authentication_denied";
/// ABORT: the client authenticated as a principal the router does not know.
pub const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";
/// ABORT: authentication would give the session a role its realm does not define.
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
/// ERROR: the authorization of an action failed at run time (its dynamic authorizer failed or did
/// not answer), so the action is refused ("fail secure").
pub const AUTHORIZATION_FAILED: &str = "wamp.error.authorization_failed";
