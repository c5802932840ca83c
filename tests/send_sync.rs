//! Send and Sync promises, checked at compile time: this file does not build if one breaks.

use std::cell::Cell;
use std::os::unix::net::UnixStream;

use ripple::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use ripple::net::{TcpListener, TcpStream};
use ripple::reactor::Async;
use ripple::runtime::{Handle, Runtime};
use ripple::task::{JoinError, JoinHandle};
use ripple::time::{Interval, Sleep};

fn is_send<T: Send>() {}
fn is_send_sync<T: Send + Sync>() {}

#[test]
fn join_handles_are_send_and_sync_for_any_send_output() {
    is_send_sync::<JoinHandle<u32>>();
    // Cell is Send but not Sync: the handle must still be both.
    is_send_sync::<JoinHandle<Cell<u32>>>();
    is_send_sync::<JoinError>();
}

#[test]
fn runtimes_are_send_and_handles_are_send_and_sync() {
    is_send::<Runtime>();
    is_send_sync::<Handle>();
}

#[test]
fn io_objects_and_timers_are_send_and_sync() {
    is_send_sync::<TcpStream>();
    is_send_sync::<TcpListener>();
    is_send_sync::<OwnedReadHalf>();
    is_send_sync::<OwnedWriteHalf>();
    is_send_sync::<Async<UnixStream>>();
    is_send_sync::<Sleep>();
    is_send_sync::<Interval>();
}

#[test]
fn join_errors_fit_in_a_boxed_send_sync_error() {
    let boxed: Box<dyn std::error::Error + Send + Sync> = ripple::block_on(async {
        ripple::spawn(async { panic!("boxed") })
            .await
            .expect_err("panicked")
            .into()
    });
    assert_eq!(boxed.to_string(), "task panicked: boxed");
}
