//! The `uploadtask` program: `upload`, `serve`, `demo`, `load`.
//!
//! Exit status: 0 when every upload ended in `success`, 1 when any ended in
//! `fail`, 2 for a usage error.

fn main() {
    std::process::exit(uploadtask_cli::run());
}
