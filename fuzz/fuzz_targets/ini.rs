//! The INI reader, supervisord's %-expansion and environment= parser take
//! whatever a configuration file holds: none of them may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_ini::{Dialect, parse, percent, supervisor_env};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Supervisor, Dialect::Circus] {
        if let Ok(doc) = parse(text, dialect) {
            for section in &doc.sections {
                for entry in &section.entries {
                    let _ = percent::expand(&entry.value, |name| {
                        (name.len() % 2 == 0).then(|| percent::Value::Int(name.len() as i64))
                    });
                    let _ = supervisor_env(&entry.value);
                }
            }
        }
    }
    let _ = percent::expand(text, |_| Some(percent::Value::Str("x".into())));
    let _ = supervisor_env(text);
});
