//! Where the HSM is and how to log in to it: module path, token label and the user PIN.
//!
//! The PIN comes from the environment or a file, never from argv: a command line is visible to
//! every local user through /proc.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::HsmError;

/// Default module: the Debian `softhsm2` package (DESIGN §4).
pub const DEFAULT_MODULE_PATH: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Default token label, as created by `scripts/softhsm-token`.
pub const DEFAULT_TOKEN_LABEL: &str = "mailvault";
/// PKCS#11 token labels are 32 bytes, blank padded.
pub const TOKEN_LABEL_BYTES_MAX: usize = 32;
/// A PIN file larger than this is not a PIN file.
const PIN_FILE_BYTES_MAX: u64 = 4096;

/// The token user PIN. Zeroized on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(pin: String) -> Pin {
        Pin(Zeroizing::new(pin))
    }

    /// The PIN itself, for handing to another PKCS#11 tool or module. Never log or format it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The PIN as cryptoki wants it. The copy lives in a `SecretString`, zeroized on drop.
    pub(crate) fn to_auth_pin(&self) -> cryptoki::types::AuthPin {
        cryptoki::types::AuthPin::from(self.0.as_str().to_owned())
    }

    /// Equality without an early exit on the first differing byte.
    pub(crate) fn matches(&self, other: &Pin) -> bool {
        let (left, right) = (self.0.as_bytes(), other.0.as_bytes());
        left.len() == right.len() && left.iter().zip(right).fold(0_u8, |difference, (a, b)| difference | (a ^ b)) == 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Pin(<redacted>)")
    }
}

/// How to reach the HSM. `Debug` is safe to log: the PIN redacts itself.
#[derive(Clone, Debug)]
pub struct HsmConfig {
    pub module_path: PathBuf,
    pub token_label: String,
    pub pin: Pin,
}

impl HsmConfig {
    /// Reads `MAILVAULT_HSM_MODULE` (default [`DEFAULT_MODULE_PATH`]), `MAILVAULT_HSM_TOKEN`
    /// (default [`DEFAULT_TOKEN_LABEL`]) and the PIN from `MAILVAULT_HSM_PIN` or the file named
    /// by `MAILVAULT_HSM_PIN_FILE` (one trailing newline trimmed).
    pub fn from_env() -> Result<Self, HsmError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`HsmConfig::from_env`] over any variable source, so that it can be tested without
    /// mutating the process environment (which is `unsafe` in edition 2024).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HsmError> {
        let module_path = lookup("MAILVAULT_HSM_MODULE")
            .filter(|value| !value.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_MODULE_PATH), PathBuf::from);
        let token_label = lookup("MAILVAULT_HSM_TOKEN")
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_LABEL.to_owned());
        check_token_label(&token_label)?;
        let pin = match (lookup("MAILVAULT_HSM_PIN"), lookup("MAILVAULT_HSM_PIN_FILE")) {
            (Some(pin), _) if !pin.is_empty() => Pin::new(pin),
            (_, Some(path)) if !path.is_empty() => read_pin_file(&PathBuf::from(path))?,
            _ => return Err(HsmError::PinMissing),
        };
        Ok(HsmConfig { module_path, token_label, pin })
    }
}

/// Rejects labels PKCS#11 would silently truncate (two labels could then collide).
pub(crate) fn check_token_label(label: &str) -> Result<(), HsmError> {
    if label.is_empty() || label.len() > TOKEN_LABEL_BYTES_MAX {
        return Err(HsmError::Config {
            what: format!("token label must be 1 to {TOKEN_LABEL_BYTES_MAX} bytes, got {}", label.len()),
        });
    }
    Ok(())
}

/// Reads a PIN file, trimming one trailing "\n" or "\r\n" (editors and `echo` add one).
pub fn read_pin_file(path: &std::path::Path) -> Result<Pin, HsmError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(HsmError::io(format!("opening PIN file {}", path.display())))?;
    // Capacity up front so that reading never reallocates and leaves PIN copies behind.
    let mut contents = Zeroizing::new(String::with_capacity(PIN_FILE_BYTES_MAX as usize + 1));
    file.take(PIN_FILE_BYTES_MAX)
        .read_to_string(&mut contents)
        .map_err(HsmError::io(format!("reading PIN file {}", path.display())))?;
    let trimmed = contents.strip_suffix('\n').unwrap_or(&contents);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(HsmError::PinMissing);
    }
    Ok(Pin::new(trimmed.to_owned()))
}
