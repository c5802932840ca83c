//! `#[ripple::test]` and `#[ripple::main]`.

use std::io;

use ripple::net::{TcpListener, TcpStream};
use ripple::runtime::Handle;

#[ripple::test]
async fn test_attribute_runs_an_async_body_that_returns_io_result_with_question_marks(
) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = TcpStream::connect(listener.local_addr()?).await?;
    let (mut server, _) = listener.accept().await?;
    client.write_all(b"?").await?;
    let mut buf = [0; 1];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"?");
    Ok(())
}

#[ripple::test]
async fn test_attribute_runs_the_body_on_a_ripple_runtime() {
    assert!(Handle::try_current().is_some());
    assert_eq!(ripple::spawn(async { 3 }).await.expect("task"), 3);
}

/// What `#[ripple::main]` makes of an `async fn`: a plain fn that blocks on its body.
#[ripple::main]
async fn main_like(fail: bool) -> io::Result<u32> {
    assert!(Handle::try_current().is_some());
    if fail {
        // `?` propagates out of the generated fn.
        TcpStream::connect("not an address").await?;
    }
    Ok(ripple::spawn(async { 42 }).await?)
}

#[test]
fn main_attribute_turns_an_async_fn_into_one_that_blocks_on_its_body() {
    assert!(Handle::try_current().is_none());
    assert_eq!(main_like(false).expect("ok"), 42);
    assert!(main_like(true).is_err(), "the error from `?` is returned");
}

#[ripple::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_thread_flavor_runs_spawned_tasks_on_worker_threads() {
    let here = std::thread::current().id();
    let there = ripple::spawn(async { std::thread::current().id() })
        .await
        .expect("task");
    assert_ne!(here, there, "a worker ran the task");
}

#[ripple::test(flavor = "current_thread")]
async fn the_current_thread_flavor_runs_spawned_tasks_on_the_same_thread() {
    let here = std::thread::current().id();
    let there = ripple::spawn(async { std::thread::current().id() })
        .await
        .expect("task");
    assert_eq!(here, there);
}
