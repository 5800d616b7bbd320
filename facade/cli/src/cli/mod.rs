//! Command-line parsing and the subcommands.

mod args;
mod demo;
mod load;
mod run;
mod upload;
mod verbose;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use self::args::USAGE;

#[derive(Parser, Debug)]
#[command(
    name = "uploadtask",
    version,
    about = "HTTP file uploads: upload, serve, demo, load, run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Upload each FILE as its own request, all at once.
    Upload(Box<upload::UploadArgs>),
    /// Start a receiver on loopback and upload to it, with a progress bar.
    Demo(demo::DemoArgs),
    /// A receiver: answers each upload with a JSON summary (fields, files with size and sha256).
    Serve(ServeArgs),
    /// Load generator: uploads/s, MB/s, latency percentiles, errors by code.
    Load(Box<load::LoadArgs>),
    /// Run JavaScript (QuickJS) where `@system.uploadtask` is the documented module.
    Run(run::RunArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Store received files here, named by their sha256.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Speak HTTP/2 too (h2c: a client that starts with the HTTP/2
    /// preface, as `--http2-prior-knowledge` does).
    #[arg(long)]
    http2: bool,
    /// With --http2: SETTINGS_MAX_CONCURRENT_STREAMS (hyper's default otherwise).
    #[arg(long, value_name = "N", requires = "http2")]
    max_streams: Option<u32>,
}

/// Parses the command line and runs the subcommand; returns the exit
/// status (0 all succeeded, 1 any failed, 2 usage error).
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { USAGE } else { 0 };
        }
    };
    match cli.command {
        Command::Upload(args) => upload::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve(args),
        Command::Load(args) => load::run(*args),
        Command::Run(args) => run::run(args),
    }
}

fn serve(args: ServeArgs) -> i32 {
    if let Some(dir) = &args.dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("uploadtask: cannot create {}: {e}", dir.display());
            return USAGE;
        }
    }
    let config = crate::serve::ReceiverConfig {
        addr: Some(args.addr),
        dir: args.dir,
        workers: Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
        http2: args.http2.then_some(crate::serve::Http2Settings {
            max_concurrent_streams: args.max_streams,
            ..Default::default()
        }),
        ..Default::default()
    };
    match crate::serve::Receiver::start(config) {
        Ok(receiver) => {
            eprintln!("uploadtask: receiving on http://{}/ (Ctrl-C stops)", receiver.addr());
            receiver.wait();
            0
        }
        Err(e) => {
            eprintln!("uploadtask: cannot listen on {}: {e}", args.addr);
            1
        }
    }
}
