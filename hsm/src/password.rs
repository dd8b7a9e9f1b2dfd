//! Users' own login passwords: argon2id, PHC strings, never reversible.
//!
//! Optionally peppered by the HSM: the argon2 secret input is HMAC-SHA256 of the password under
//! a non-extractable token key, so a stolen password database cannot be attacked offline without
//! the HSM. Peppered hashes carry `keyid=<PEPPER_KEY_ID>` in their PHC string, which tells the
//! two kinds apart; `verify_password_peppered` accepts both, so accounts hashed before the pepper
//! was introduced keep working.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, KeyId, ParamsBuilder, Version};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::HsmError;
use crate::session::HsmSession;

pub(crate) const PEPPER_KEY_LABEL: &str = "mailvault-password-pepper-v1";
/// Recorded in peppered PHC strings (argon2 `keyid`); names the pepper key's version.
const PEPPER_KEY_ID: &[u8] = b"mvpep1";
/// Domain separation for the pepper HMAC.
const PEPPER_CONTEXT: &[u8] = b"mailvault-password-pepper-v1\0";
/// Longer "passwords" are denial of service, not passwords.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Caps on parameters read back from stored hashes: a tampered hash must not make one login
/// allocate gigabytes or spin for minutes.
pub const MEMORY_KIB_MAX: u32 = 1024 * 1024;
pub const ITERATIONS_MAX: u32 = 64;
pub const PARALLELISM_MAX: u32 = 16;
const SALT_BYTES: usize = 16;

/// argon2id cost parameters. Defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: argon2::Params::DEFAULT_M_COST,
            iterations: argon2::Params::DEFAULT_T_COST,
            parallelism: argon2::Params::DEFAULT_P_COST,
        }
    }
}

fn password_error(error: impl std::fmt::Display) -> HsmError {
    HsmError::Password { reason: error.to_string() }
}

fn check_limits(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<(), HsmError> {
    if memory_kib > MEMORY_KIB_MAX || iterations > ITERATIONS_MAX || parallelism > PARALLELISM_MAX {
        return Err(HsmError::Password {
            reason: format!(
                "argon2 parameters m={memory_kib} t={iterations} p={parallelism} exceed the limits \
                 m<={MEMORY_KIB_MAX} t<={ITERATIONS_MAX} p<={PARALLELISM_MAX}"
            ),
        });
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), HsmError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(HsmError::Password { reason: format!("password longer than {PASSWORD_BYTES_MAX} bytes") });
    }
    Ok(())
}

fn hash_with(params: &PasswordParams, password: &str, pepper: Option<&[u8; 32]>) -> Result<String, HsmError> {
    check_password(password)?;
    check_limits(params.memory_kib, params.iterations, params.parallelism)?;
    let mut builder = ParamsBuilder::new();
    builder.m_cost(params.memory_kib).t_cost(params.iterations).p_cost(params.parallelism);
    if pepper.is_some() {
        builder.keyid(KeyId::new(PEPPER_KEY_ID).map_err(password_error)?);
    }
    let argon2_params = builder.build().map_err(password_error)?;
    let argon2 = match pepper {
        Some(pepper) => Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, argon2_params)
            .map_err(password_error)?,
        None => Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params),
    };
    let mut salt_bytes = [0_u8; SALT_BYTES];
    getrandom::fill(&mut salt_bytes).map_err(password_error)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(password_error)?;
    let hash = argon2.hash_password(password.as_bytes(), &salt).map_err(password_error)?;
    Ok(hash.to_string())
}

/// Parses a stored PHC string and checks it is argon2id within our limits.
fn parse_hash(phc: &str) -> Result<PasswordHash<'_>, HsmError> {
    let hash = PasswordHash::new(phc).map_err(password_error)?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(HsmError::Password { reason: format!("stored hash uses {}, not argon2id", hash.algorithm) });
    }
    let params = argon2::Params::try_from(&hash).map_err(password_error)?;
    check_limits(params.m_cost(), params.t_cost(), params.p_cost())?;
    Ok(hash)
}

fn is_peppered(hash: &PasswordHash<'_>) -> Result<bool, HsmError> {
    let params = argon2::Params::try_from(hash).map_err(password_error)?;
    match params.keyid() {
        [] => Ok(false),
        PEPPER_KEY_ID => Ok(true),
        _ => Err(HsmError::Password { reason: "stored hash names an unknown pepper key".to_owned() }),
    }
}

fn verify_with(password: &str, hash: &PasswordHash<'_>, pepper: Option<&[u8; 32]>) -> Result<bool, HsmError> {
    let argon2 = match pepper {
        Some(pepper) => Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, argon2::Params::default())
            .map_err(password_error)?,
        None => Argon2::default(),
    };
    match argon2.verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(password_error(error)),
    }
}

/// Hashes a password with argon2id and a random salt; returns the PHC string to store.
pub fn hash_password(params: &PasswordParams, password: &str) -> Result<String, HsmError> {
    hash_with(params, password, None)
}

/// `Ok(false)` for a wrong password; `Err` for a stored hash that cannot be used (malformed,
/// over the limits, or peppered: those need [`verify_password_peppered`]).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, HsmError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Ok(false);
    }
    let hash = parse_hash(phc)?;
    if is_peppered(&hash)? {
        return Err(HsmError::Password { reason: "stored hash is peppered: verify it with the HSM".to_owned() });
    }
    verify_with(password, &hash, None)
}

/// Like [`hash_password`], with the HSM pepper as argon2's secret input.
pub fn hash_password_peppered(
    session: &HsmSession,
    params: &PasswordParams,
    password: &str,
) -> Result<String, HsmError> {
    check_password(password)?;
    let pepper = pepper(session, password)?;
    hash_with(params, password, Some(&pepper))
}

/// Verifies peppered hashes with the HSM pepper and unpeppered ones without it.
pub fn verify_password_peppered(session: &HsmSession, password: &str, phc: &str) -> Result<bool, HsmError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Ok(false);
    }
    let hash = parse_hash(phc)?;
    if !is_peppered(&hash)? {
        return verify_with(password, &hash, None);
    }
    let pepper = pepper(session, password)?;
    verify_with(password, &hash, Some(&pepper))
}

/// HMAC-SHA256(pepper key, context ‖ password), computed inside the HSM.
fn pepper(session: &HsmSession, password: &str) -> Result<Zeroizing<[u8; 32]>, HsmError> {
    let mut input = Zeroizing::new(Vec::with_capacity(PEPPER_CONTEXT.len() + password.len()));
    input.extend_from_slice(PEPPER_CONTEXT);
    input.extend_from_slice(password.as_bytes());
    session.hmac(PEPPER_KEY_LABEL, &input).map(Zeroizing::new)
}
