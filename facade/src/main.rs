//! The uploadtask program (being built).
fn main() {
    eprintln!("uploadtask: the program is not built yet");
    std::process::exit(2);
}
