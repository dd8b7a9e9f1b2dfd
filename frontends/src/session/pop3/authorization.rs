//! The POP3 AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH PLAIN, QUIT. No credentials are
//! accepted on a connection without TLS.

use crate::proto::pop3::{self, Command, Reply, ResponseCode};
use crate::proto::sasl::{self, PlainCredentials, SaslResponse};
use crate::proto::{Parsed, Rejected};
use crate::session::SessionIo;
use crate::session::auth::LoginError;
use crate::session::context::Interrupted;
use crate::session::exchange::Exchange;

use super::{Maildrop, State, write_capabilities};

/// The only SASL mechanism offered: PLAIN, over TLS.
const PLAIN: &str = "PLAIN";

#[derive(Debug, Default)]
pub(super) struct Authorization {
    /// The name given by USER, waiting for PASS.
    user: Option<String>,
}

/// What every refused plaintext login attempt is told.
fn plaintext_refused() -> Reply {
    Reply::error("no plaintext authentication: use STLS (or the POP3S port) first")
}

impl Authorization {
    /// Handles one command; the flag says whether it succeeded (for the error limit).
    pub(super) async fn on_command<Io: SessionIo>(
        self,
        command: Command,
        exchange: &mut Exchange<'_, Io>,
    ) -> Result<(State, bool), Interrupted> {
        let tls = exchange.io.is_tls();
        let refuse = |exchange: &mut Exchange<'_, Io>, reply: Reply, state: Self| {
            reply.write_to(exchange.output());
            Ok((State::Authorization(state), false))
        };
        match command {
            Command::Capa => {
                write_capabilities(exchange, false);
                Ok((State::Authorization(self), true))
            }
            Command::Stls if tls || !exchange.context.tls_available() => {
                refuse(exchange, Reply::error("STLS is not available now"), self)
            }
            Command::Stls => {
                Reply::ok("Begin TLS negotiation").write_to(exchange.output());
                exchange.start_tls().await?;
                Ok((State::Authorization(Self::default()), true))
            }
            Command::User { .. } | Command::Pass { .. } | Command::Auth { .. } if !tls => {
                refuse(exchange, plaintext_refused(), Self::default())
            }
            Command::User { name } => {
                Reply::ok("send PASS").write_to(exchange.output());
                Ok((State::Authorization(Self { user: Some(name) }), true))
            }
            Command::Pass { password } => match self.user {
                Some(user) => login(&user, password.expose(), "USER/PASS", exchange).await,
                None => refuse(exchange, Reply::error("USER first"), Self::default()),
            },
            Command::Auth { mechanism, initial_response } => {
                if mechanism != PLAIN {
                    return refuse(exchange, Reply::error("unsupported SASL mechanism"), Self::default());
                }
                authenticate_plain(initial_response, exchange).await
            }
            Command::Quit => {
                Reply::ok(format!("{} POP3 server signing off", exchange.context.host_name()))
                    .write_to(exchange.output());
                Ok((State::Closed, true))
            }
            _ => refuse(exchange, Reply::error("not valid before login"), self),
        }
    }
}

/// AUTH PLAIN, with the credentials in the command or after an empty challenge.
async fn authenticate_plain<Io: SessionIo>(
    initial_response: Option<SaslResponse>,
    exchange: &mut Exchange<'_, Io>,
) -> Result<(State, bool), Interrupted> {
    let response = if let Some(response) = initial_response {
        Ok(response)
    } else {
        pop3::write_challenge(b"", exchange.output());
        read_sasl_response(exchange).await?
    };
    let failed = |exchange: &mut Exchange<'_, Io>, text: &str| {
        Reply::error(text).write_to(exchange.output());
        Ok((State::Authorization(Authorization::default()), false))
    };
    let message = match response {
        Ok(SaslResponse::Data(message)) => message,
        Ok(SaslResponse::Cancel) => return failed(exchange, "authentication cancelled"),
        Err(error) => return failed(exchange, &error.to_string()),
    };
    let credentials = match PlainCredentials::parse(message.expose()) {
        Ok(credentials) => credentials,
        Err(error) => return failed(exchange, &error.to_string()),
    };
    // Acting as another user is an administrator's privilege we do not grant.
    if credentials
        .authorization_identity
        .as_ref()
        .is_some_and(|identity| *identity != credentials.authentication_identity)
    {
        return failed(exchange, "authorization identity must be the authentication identity");
    }
    login(&credentials.authentication_identity, credentials.password.expose(), "AUTH PLAIN", exchange).await
}

async fn read_sasl_response<Io: SessionIo>(
    exchange: &mut Exchange<'_, Io>,
) -> Result<Result<SaslResponse, sasl::SaslError>, Interrupted> {
    loop {
        match sasl::parse_response_line(&exchange.input, exchange.context.limits()) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                exchange.consume(consumed_bytes);
                return Ok(Ok(value));
            }
            Ok(Parsed::NeedsMoreData) => exchange.fill().await?,
            Err(Rejected { error, consumed_bytes, line_finished }) => {
                exchange.consume(consumed_bytes);
                if !line_finished {
                    exchange.discard_rest_of_line();
                }
                return Ok(Err(error));
            }
        }
    }
}

async fn login<Io: SessionIo>(
    account: &str,
    password: &[u8],
    method: &str,
    exchange: &mut Exchange<'_, Io>,
) -> Result<(State, bool), Interrupted> {
    let reply = match exchange.context.login(account, password, method).await {
        Ok(logged_in) => return Ok(Maildrop::open(logged_in, exchange).await),
        Err(LoginError::WrongCredentials) => {
            Reply::error_with_code(ResponseCode::Auth, "invalid user name or password")
        }
        Err(LoginError::RateLimited) => {
            Reply::error_with_code(ResponseCode::LoginDelay, "too many failed logins, try again later")
        }
        Err(LoginError::LoggedOut) => Reply::error_with_code(ResponseCode::Auth, "the account was logged out"),
        Err(LoginError::Unavailable) => {
            Reply::error_with_code(ResponseCode::SystemTemporary, "authentication is temporarily unavailable")
        }
    };
    reply.write_to(exchange.output());
    Ok((State::Authorization(Authorization::default()), false))
}
