//! `users`: the users service on its own (the stack launcher runs it in-process).

use clap::Parser;

// The system allocator on purpose: users' memory is the argon2 workers' blocks, and
// mimalloc kept 30 MB more of it under a login storm (49.5 MB -> 77.9 MB peak).

fn main() {
    let config = users::Config::parse();
    service_kit::runtime::main(async move {
        let app = users::build(config).await?;
        app.run_until_stopped(service_kit::runtime::shutdown_signal())
            .await
    });
}
