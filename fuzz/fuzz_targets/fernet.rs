//! Arbitrary keys and ciphertexts into the Fernet layer: any string makes a key, and decrypting
//! garbage is an error, never a panic. What is encrypted comes back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use melodyhue_core::secrets::SecretBox;

fuzz_target!(|input: (&str, &str)| {
    let (key, text) = input;
    let secrets = SecretBox::new(key);
    let _ = secrets.decrypt(text);
    assert_eq!(
        secrets.decrypt(&secrets.encrypt(text)).ok().as_deref(),
        Some(text)
    );
});
