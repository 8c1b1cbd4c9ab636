//! The orders service end to end, in one test binary, by feature: [`reads`], [`buys`],
//! [`durability`] and [`doors`] run the service in this process; [`crash`] runs the real
//! binary as a child process and kills it.

mod buys;
mod crash;
mod doors;
mod durability;
mod helpers;
mod instances;
mod reads;
