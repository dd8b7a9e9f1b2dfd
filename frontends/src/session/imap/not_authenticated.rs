//! The not-authenticated state: STARTTLS, LOGIN and AUTHENTICATE PLAIN (with or without an
//! initial response). Passwords are only accepted over TLS (LOGINDISABLED before it).

use super::capability::authenticated_capabilities;
use super::client::Client;
use super::completion::Completion;
use super::state::{Authenticated, State};
use crate::proto::imap::{CommandKind, ResponseCode, Tag, write_continuation};
use crate::proto::sasl::{PlainCredentials, SaslResponse};
use crate::session::SessionIo;
use crate::session::auth::LoginError;
use crate::session::context::Interrupted;

pub(super) async fn handle<C: SessionIo>(
    tag: Tag,
    kind: CommandKind,
    client: &mut Client<'_, C>,
) -> Result<State, Interrupted> {
    match kind {
        CommandKind::Noop => {
            client.complete(&tag, &Completion::ok("NOOP completed"));
            Ok(State::NotAuthenticated)
        }
        CommandKind::StartTls => start_tls(&tag, client).await,
        CommandKind::Login { username, password } => log_in(&tag, &username, password.expose(), "LOGIN", client).await,
        CommandKind::Authenticate { mechanism, initial_response } => {
            authenticate(&tag, &mechanism, initial_response, client).await
        }
        _ => {
            client.complete(&tag, &Completion::bad("Log in first"));
            Ok(State::NotAuthenticated)
        }
    }
}

async fn start_tls<C: SessionIo>(tag: &Tag, client: &mut Client<'_, C>) -> Result<State, Interrupted> {
    if client.io.is_tls() {
        client.complete(tag, &Completion::bad("TLS is already active"));
    } else if !client.session.tls_available() {
        client.complete(tag, &Completion::no("STARTTLS is not available"));
    } else {
        client.complete(tag, &Completion::ok("Begin TLS negotiation now"));
        client.start_tls().await?;
    }
    Ok(State::NotAuthenticated)
}

async fn authenticate<C: SessionIo>(
    tag: &Tag,
    mechanism: &str,
    initial_response: Option<SaslResponse>,
    client: &mut Client<'_, C>,
) -> Result<State, Interrupted> {
    if mechanism != "PLAIN" {
        client.complete(tag, &Completion::no("Unsupported authentication mechanism"));
        return Ok(State::NotAuthenticated);
    }
    if !client.io.is_tls() {
        client.complete(tag, &Completion::no("Use STARTTLS before authenticating"));
        return Ok(State::NotAuthenticated);
    }
    let response = if let Some(response) = initial_response {
        response
    } else {
        // PLAIN has no challenge: an empty continuation asks for the response.
        write_continuation("", &mut client.output);
        client.flush().await?;
        match client.read_sasl_response().await? {
            Ok(response) => response,
            Err(error) => {
                client.complete(tag, &Completion::bad(error.to_string()));
                return Ok(State::NotAuthenticated);
            }
        }
    };
    let SaslResponse::Data(message) = response else {
        client.complete(tag, &Completion::bad("AUTHENTICATE cancelled"));
        return Ok(State::NotAuthenticated);
    };
    let credentials = match PlainCredentials::parse(message.expose()) {
        Ok(credentials) => credentials,
        Err(error) => {
            client.complete(tag, &Completion::bad(error.to_string()));
            return Ok(State::NotAuthenticated);
        }
    };
    if credentials
        .authorization_identity
        .as_ref()
        .is_some_and(|identity| *identity != credentials.authentication_identity)
    {
        let refusal =
            Completion::no("Acting as another user is not allowed").with_code(ResponseCode::AuthenticationFailed);
        client.complete(tag, &refusal);
        return Ok(State::NotAuthenticated);
    }
    log_in(tag, &credentials.authentication_identity, credentials.password.expose(), "AUTHENTICATE PLAIN", client).await
}

/// Checks the password through the shared authenticator (rate limit, access log, registry).
async fn log_in<C: SessionIo>(
    tag: &Tag,
    account: &str,
    password: &[u8],
    method: &str,
    client: &mut Client<'_, C>,
) -> Result<State, Interrupted> {
    if !client.io.is_tls() {
        // RFC 3501 §6.2.3: LOGINDISABLED is advertised; refuse without looking at the password.
        client.complete(tag, &Completion::no("Use STARTTLS before logging in"));
        return Ok(State::NotAuthenticated);
    }
    match client.session.login(account, password, method).await {
        Ok(logged_in) => {
            let capabilities = authenticated_capabilities().into_iter().map(str::to_owned).collect();
            client.complete(tag, &Completion::ok("Logged in").with_code(ResponseCode::Capability(capabilities)));
            Ok(State::Authenticated(Authenticated { account: logged_in.account }))
        }
        Err(error) => {
            let refusal = match error {
                LoginError::WrongCredentials => {
                    Completion::no("Authentication failed").with_code(ResponseCode::AuthenticationFailed)
                }
                LoginError::RateLimited => Completion::no("Too many failed logins; try again later")
                    .with_code(ResponseCode::AuthenticationFailed),
                // Our failure, not the client's (the engine, the HSM, a quarantined shard).
                LoginError::Unavailable => {
                    Completion::no(LoginError::Unavailable.to_string()).with_code(ResponseCode::Unavailable)
                }
                other => Completion::no(other.to_string()),
            };
            client.complete(tag, &refusal);
            Ok(State::NotAuthenticated)
        }
    }
}
