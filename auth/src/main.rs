//! `auth`: the auth service on its own (the stack launcher runs it in-process).

use clap::Parser;

fn main() {
    let config = auth::Config::parse();
    bus_schema::runtime::main(async move {
        let app = auth::build(config).await?;
        app.run_until_stopped(bus_schema::runtime::shutdown_signal())
            .await
    });
}
