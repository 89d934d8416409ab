//! Fuzzes grant compilation from config text: arbitrary TOML with `[[grants]]` tables is
//! deserialised into `Vec<GrantConfig>` (as `config.rs` does), compiled, and evaluated for
//! a few fixed users. Nothing may panic, and every `Ok` access must keep the invariants in
//! `tinybird_bff_fuzz::check_grants` (never empty, never blank, filter values stay literals).
//! Seeds in `fuzz/corpus/grants_toml` are the demo's grants; libFuzzer mutates the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use tinybird_bff::grants::GrantConfig;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    grants: Vec<GrantConfig>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<File>(text) else {
        return;
    };
    tinybird_bff_fuzz::check_grants(&file.grants, &tinybird_bff_fuzz::fixed_users());
});
