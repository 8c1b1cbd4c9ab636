//! `cargo run --release -p stack`: the whole shop in one process.

use clap::Parser;

/// mimalloc: the request path allocates many small buffers, and glibc's malloc was
/// a sixth of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = stack::Config::parse();
    let run = config.run;
    service_kit::runtime::main(
        run,
        stack::run(config, service_kit::runtime::shutdown_signal()),
    );
}
