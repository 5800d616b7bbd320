//! `-v`: the engine's notes (which address answered, origins not pooled)
//! printed as curl prints its own, `* ` and the text, on standard error.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Notes;

impl Log for Notes {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info && metadata.target().starts_with("uploadtask")
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("* {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Prints the engine's notes from now on (once per process; a second call
/// changes nothing).
pub fn install() {
    if log::set_logger(&Notes).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}
