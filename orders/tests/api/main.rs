//! The orders service end to end, in one test binary, by feature: [`reads`],
//! [`history`] (histories of any length), [`buys`], [`durability`], [`instances`] and
//! [`doors`] run the service in this process; [`crash`] runs the real binary as a child
//! process and kills it.

mod buys;
mod crash;
mod doors;
mod durability;
mod helpers;
mod history;
mod instances;
mod reads;
