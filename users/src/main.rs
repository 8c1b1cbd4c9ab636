//! `users`: the users service on its own (the stack launcher runs it in-process).

use clap::Parser;

fn main() {
    let config = users::Config::parse();
    bus_schema::runtime::main(async move {
        let app = users::build(config).await?;
        app.run_until_stopped(bus_schema::runtime::shutdown_signal())
            .await
    });
}
