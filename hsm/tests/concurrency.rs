//! Several threads, each with its own session on one token, at the same time.

use std::sync::Barrier;

use mailvault_hsm::HsmError;
use mailvault_hsm::testing::TestToken;

const THREADS: usize = 2;
const ROUNDS: usize = 200;

#[test]
fn threads_with_their_own_sessions_do_not_interfere() {
    let token = TestToken::create_with_keys();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let hsm = token.hsm.clone();
            let barrier = &barrier;
            scope.spawn(move || {
                let session = hsm.session().unwrap();
                barrier.wait();
                let account = format!("account-{thread}");
                for round in 0..ROUNDS {
                    let dek = session.generate_dek().unwrap();
                    let wrapped = session.wrap_dek(&dek).unwrap();
                    assert_eq!(session.unwrap_dek(&wrapped).unwrap().as_bytes(), dek.as_bytes());
                    let secret = format!("secret {thread} {round}");
                    let sealed = session.seal_credential(&account, "feed", secret.as_bytes()).unwrap();
                    let opened = session.open_credential(&account, "feed", &sealed).unwrap();
                    assert_eq!(opened.as_slice(), secret.as_bytes());
                }
                // Dropping this session must not log out the other thread's session.
            });
        }
    });
    // Sessions opened and closed on other threads left the token usable.
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    session.unwrap_dek(&session.wrap_dek(&dek).unwrap()).unwrap();
}

#[test]
fn sessions_opened_and_dropped_while_another_works_keep_it_logged_in() {
    let token = TestToken::create_with_keys();
    let worker = token.hsm.session().unwrap();
    let dek = worker.generate_dek().unwrap();
    let wrapped = worker.wrap_dek(&dek).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..50 {
                drop(token.hsm.session().unwrap());
            }
        });
        for _ in 0..200 {
            assert_eq!(worker.unwrap_dek(&wrapped).unwrap().as_bytes(), dek.as_bytes());
        }
    });
}

#[test]
fn hsm_is_send_and_sync_and_sessions_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<mailvault_hsm::Hsm>();
    send::<mailvault_hsm::HsmSession>();
}

/// Regression: a KEK created (and an old one destroyed) on one thread while other threads
/// wrap and unwrap under the current KEK. `SoftHSM2`'s file store let the readers load the new
/// key's object half-written: `C_GenerateKey (KEK)` failed with `CKR_GENERAL_ERROR` now and
/// then (the purge test saw about one run in twenty), or an unwrap found a key of 0 bits; and
/// a wrap could find the current KEK and then lose it to a destroy before using it. Token-object
/// changes now exclude every other operation of the process (`token_access`).
#[test]
fn rotating_keks_while_other_threads_wrap_and_unwrap_never_fails() {
    const ROTATIONS: usize = 40;
    let token = TestToken::create_with_keys();
    let rotating = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let hsm = token.hsm.clone();
            let rotating = &rotating;
            scope.spawn(move || {
                let session = hsm.session().unwrap();
                let dek = session.generate_dek().unwrap();
                // Bounded: at most this many rounds, whether or not the rotations are done.
                for _ in 0..20 * ROUNDS {
                    if !rotating.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let wrapped = session.wrap_dek(&dek).unwrap();
                    match session.unwrap_dek(&wrapped) {
                        Ok(unwrapped) => assert_eq!(unwrapped.as_bytes(), dek.as_bytes()),
                        // Its KEK was destroyed in between: shredded, as it should be.
                        Err(HsmError::KeyMissing { .. }) => {}
                        Err(error) => panic!("unwrap during rotation: {error:?}"),
                    }
                }
            });
        }
        let session = token.hsm.session().unwrap();
        for _ in 0..ROTATIONS {
            let new = session.rotate_kek().unwrap();
            session.destroy_kek(new - 1).unwrap();
        }
        rotating.store(false, std::sync::atomic::Ordering::Relaxed);
    });
}
