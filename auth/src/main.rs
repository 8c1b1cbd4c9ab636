//! `auth`: the auth service on its own (the stack launcher runs it in-process).

use clap::Parser;

/// mimalloc: the request path allocates many small buffers, and glibc's malloc was
/// a sixth of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = auth::Config::parse();
    service_kit::runtime::main(async move {
        let app = auth::build(config).await?;
        app.run_until_stopped(service_kit::runtime::shutdown_signal())
            .await
    });
}
