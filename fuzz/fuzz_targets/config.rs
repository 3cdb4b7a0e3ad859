//! The config loader on arbitrary text: never panics; every error names a
//! position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Err(errors) = remora::config::parse_str(text, std::path::Path::new("f.yaml"), &env) {
        assert!(!errors.is_empty());
        let lines = text.matches(['\n', '\r']).count() + 2;
        for e in errors {
            assert!(e.mark.line <= lines, "{e} beyond {lines} lines");
        }
    }
});
