//! Key custody for mailvault: everything that touches the HSM lives here.
#![forbid(unsafe_code)]
