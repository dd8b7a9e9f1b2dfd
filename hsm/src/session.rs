//! `Hsm` (a shareable handle on one token) and `HsmSession` (one logged-in PKCS#11 session,
//! owned by one thread), plus finding the token objects mailvault keeps by label.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use crate::config::{HsmConfig, Pin, check_token_label};
use crate::error::HsmError;
use crate::pkcs11;
use crate::token_dir_lock::lock_token_dir;

/// A token mailvault can use: the process-wide module context, the token's slot and the PIN.
///
/// Cheap to clone and `Send + Sync`; every thread opens its own [`HsmSession`] from it.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<HsmInner>,
}

struct HsmInner {
    context: Pkcs11,
    module_path: PathBuf,
    slot: Slot,
    token_label: String,
    pin: Pin,
}

impl fmt::Debug for Hsm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Hsm")
            .field("token_label", &self.inner.token_label)
            .field("slot", &self.inner.slot.id())
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// Loads the module (once per process), finds the token by label and checks the PIN by
    /// logging in once, so that a wrong PIN fails at startup rather than at the first message.
    pub fn open(config: &HsmConfig) -> Result<Hsm, HsmError> {
        check_token_label(&config.token_label)?;
        if config.pin.is_empty() {
            return Err(HsmError::PinMissing);
        }
        let token_dir_lock = lock_token_dir()?;
        let context = pkcs11::context(&config.module_path)?;
        let slot = pkcs11::find_slot(&context, &config.token_label)?
            .ok_or_else(|| HsmError::TokenNotFound { label: config.token_label.clone() })?;
        drop(token_dir_lock);
        let hsm = Hsm {
            inner: Arc::new(HsmInner {
                context,
                module_path: config.module_path.clone(),
                slot,
                token_label: config.token_label.clone(),
                pin: config.pin.clone(),
            }),
        };
        drop(hsm.session()?);
        Ok(hsm)
    }

    /// A read-write session logged in as the token user. Keep one per thread: sessions are
    /// `Send` but not `Sync`, and a PKCS#11 session runs one operation at a time.
    pub fn session(&self) -> Result<HsmSession, HsmError> {
        let session = self.inner.context.open_rw_session(self.inner.slot).map_err(HsmError::pkcs11("C_OpenSession"))?;
        // Login state is per token and process, shared by all sessions: "already logged in"
        // (another thread did it) is success when our PIN is the one that logged in.
        pkcs11::login_user(&self.inner.module_path, self.inner.slot, &session, &self.inner.pin)?;
        Ok(HsmSession { session, hsm: self.clone() })
    }

    pub fn token_label(&self) -> &str {
        &self.inner.token_label
    }

    /// The token's serial number (`SoftHSM2` names the token's directory after it).
    pub(crate) fn token_serial(&self) -> Result<String, HsmError> {
        let info = self.inner.context.get_token_info(self.inner.slot).map_err(HsmError::pkcs11("C_GetTokenInfo"))?;
        Ok(info.serial_number().to_owned())
    }
}

/// One logged-in session on the token. `Send`, not `Sync`: one per thread.
pub struct HsmSession {
    session: Session,
    hsm: Hsm,
}

impl fmt::Debug for HsmSession {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("HsmSession").field("hsm", &self.hsm).finish_non_exhaustive()
    }
}

/// Which of mailvault's keys the token holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// KEK versions present on the token, ascending.
    pub kek_versions: Vec<u32>,
    /// The version new DEKs are wrapped under: the highest present.
    pub current_kek: Option<u32>,
    pub credential_key: bool,
    pub manifest_key: bool,
    pub password_pepper_key: bool,
}

impl HsmSession {
    /// The session for one PKCS#11 call (see `token_access`: calls and changes to token
    /// objects do not overlap within the process).
    pub(crate) fn pkcs11(&self) -> crate::token_access::SessionAccess<'_> {
        crate::token_access::read(&self.session)
    }

    /// The handle of the one secret key labelled `label`, if any.
    pub(crate) fn find_secret_key(&self, label: &str) -> Result<Option<ObjectHandle>, HsmError> {
        self.find_one(ObjectClass::SECRET_KEY, label)
    }

    /// Like [`HsmSession::find_secret_key`], but its absence is an error.
    pub(crate) fn require_secret_key(&self, label: &str) -> Result<ObjectHandle, HsmError> {
        self.find_secret_key(label)?.ok_or_else(|| HsmError::KeyMissing { label: label.to_owned() })
    }

    /// The one token object of `class` labelled `label`. Two objects with one label would make
    /// every later lookup ambiguous, so that is an error, never a guess.
    pub(crate) fn find_one(&self, class: ObjectClass, label: &str) -> Result<Option<ObjectHandle>, HsmError> {
        let template = [Attribute::Token(true), Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())];
        let handles = self.pkcs11().find_objects(&template).map_err(HsmError::pkcs11("C_FindObjects"))?;
        match handles.as_slice() {
            [] => Ok(None),
            [handle] => Ok(Some(*handle)),
            _ => Err(HsmError::DuplicateKey { label: label.to_owned() }),
        }
    }

    /// Labels of all token secret keys (KEK versions are found by label prefix, which
    /// `C_FindObjects` cannot match).
    pub(crate) fn secret_key_labels(&self) -> Result<Vec<String>, HsmError> {
        let template = [Attribute::Token(true), Attribute::Class(ObjectClass::SECRET_KEY)];
        let handles = self.pkcs11().find_objects(&template).map_err(HsmError::pkcs11("C_FindObjects"))?;
        let mut labels = Vec::with_capacity(handles.len());
        for handle in handles {
            let attributes = self
                .pkcs11()
                .get_attributes(handle, &[AttributeType::Label])
                .map_err(HsmError::pkcs11("C_GetAttributeValue"))?;
            for attribute in attributes {
                if let Attribute::Label(bytes) = attribute {
                    labels.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        Ok(labels)
    }

    /// Creates whichever of mailvault's keys are missing: a KEK (v1 on a new token; if every KEK
    /// was destroyed, the next unused version), the credential-sealing key, the manifest HMAC key and the password pepper key.
    /// Idempotent; serialized within the process so that two threads cannot create one label
    /// twice, and for `SoftHSM2` across processes too (`kek::key_admin_lock`).
    pub fn ensure_keys(&self) -> Result<KeyStatus, HsmError> {
        let _guard = crate::kek::key_admin_lock()?;
        if self.kek_versions()?.is_empty() {
            self.create_kek(self.next_kek_version()?)?;
        }
        if self.find_secret_key(crate::credential::CREDENTIAL_KEY_LABEL)?.is_none() {
            self.create_credential_key()?;
        }
        if self.find_secret_key(crate::manifest::MANIFEST_KEY_LABEL)?.is_none() {
            self.create_hmac_key(crate::manifest::MANIFEST_KEY_LABEL)?;
        }
        if self.find_secret_key(crate::password::PEPPER_KEY_LABEL)?.is_none() {
            self.create_hmac_key(crate::password::PEPPER_KEY_LABEL)?;
        }
        self.status()
    }

    /// Which keys are present, without changing anything.
    pub fn status(&self) -> Result<KeyStatus, HsmError> {
        let _reading = crate::token_access::reading();
        let kek_versions = self.kek_versions()?;
        Ok(KeyStatus {
            current_kek: kek_versions.last().copied(),
            kek_versions,
            credential_key: self.find_secret_key(crate::credential::CREDENTIAL_KEY_LABEL)?.is_some(),
            manifest_key: self.find_secret_key(crate::manifest::MANIFEST_KEY_LABEL)?.is_some(),
            password_pepper_key: self.find_secret_key(crate::password::PEPPER_KEY_LABEL)?.is_some(),
        })
    }

    pub fn hsm(&self) -> &Hsm {
        &self.hsm
    }
}
