//! `orders`: the orders service on its own (the stack launcher runs it in-process).

use clap::Parser;

fn main() {
    let config = orders::Config::parse();
    bus_schema::runtime::main(async move {
        let app = orders::build(config).await?;
        app.run_until_stopped(bus_schema::runtime::shutdown_signal())
            .await
    });
}
