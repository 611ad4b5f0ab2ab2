use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use std::os::fd::BorrowedFd;

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn context(rt: &tokio::runtime::Runtime, fd: Option<BorrowedFd<'_>>, behind: &[u8]) -> Context {
    context_due(rt, fd, behind, None)
}

fn context_due(
    rt: &tokio::runtime::Runtime,
    fd: Option<BorrowedFd<'_>>,
    behind: &[u8],
    deadline: Option<Instant>,
) -> Context {
    Context::new(
        deadline,
        None,
        None,
        Watch::new(fd, behind),
        rt.handle().clone(),
    )
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    out.extend_from_slice(payload);
    frame::finish(&mut out, mark);
    out
}

#[test]
fn a_cancel_frame_is_told_from_others_by_its_bytes() {
    assert_eq!(frame_is_cancel(&framed(b"\xa6CANCEL")), Some(true));
    assert_eq!(frame_is_cancel(&framed(b"\"CANCEL\"")), Some(true));
    assert_eq!(frame_is_cancel(&framed(b"\xa7SIGENDS")), Some(false));
    assert_eq!(frame_is_cancel(&framed(&[0x93; 100])), Some(false));
    let whole = framed(b"\xa6CANCEL");
    for n in 0..whole.len() {
        assert_eq!(frame_is_cancel(&whole[..n]), None, "{n} bytes");
    }
}

#[test]
fn a_cancel_behind_the_call_cancels_it_whether_read_already_or_not() {
    let rt = runtime();
    let cancel = framed(b"\xa6CANCEL");
    // Read with the request.
    assert_eq!(context(&rt, None, &cancel).why(), Some(Cancelled::ByCaller));
    // Half read with it, half still in the socket.
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &cancel[..5]);
    assert!(!ctx.is_cancelled());
    theirs.write_all(&cancel[5..]).unwrap();
    assert_eq!(ctx.why(), Some(Cancelled::ByCaller));
    // Peeked, not read: the session reads it after the call.
    let mut left = [0u8; 16];
    ours.set_nonblocking(true).unwrap();
    assert_eq!((&ours).peek_len(&mut left), cancel.len() - 5);
}

trait PeekLen {
    fn peek_len(self, buf: &mut [u8]) -> usize;
}

impl PeekLen for &UnixStream {
    fn peek_len(self, buf: &mut [u8]) -> usize {
        rustix::net::recv(self, buf, rustix::net::RecvFlags::PEEK)
            .unwrap()
            .0
    }
}

#[test]
fn another_frame_behind_the_call_stops_the_look_for_a_cancel_but_not_for_the_close() {
    let rt = runtime();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    theirs.write_all(&framed(b"\x93\xa4echo\x90\x80")).unwrap();
    theirs.write_all(&framed(b"\xa6CANCEL")).unwrap();
    assert!(
        !ctx.is_cancelled(),
        "a CANCEL behind another request is too late"
    );
    drop(theirs);
    assert_eq!(ctx.why(), Some(Cancelled::CallerGone));
}

#[test]
fn the_caller_closing_cancels_and_an_ended_call_keeps_what_it_knew() {
    let rt = runtime();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    assert!(!ctx.is_cancelled());
    ctx.end();
    drop(theirs);
    assert!(
        !ctx.is_cancelled(),
        "the socket is not looked at after the call"
    );
    let (ours, theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    drop(theirs);
    assert_eq!(ctx.why(), Some(Cancelled::CallerGone));
    ctx.end();
    assert_eq!(ctx.why(), Some(Cancelled::CallerGone));
}

#[test]
fn the_deadline_passing_cancels_and_remaining_counts_down() {
    let rt = runtime();
    let ctx = context_due(&rt, None, &[], Some(Instant::now()));
    assert_eq!(ctx.why(), Some(Cancelled::DeadlinePassed));
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    let later = Instant::now() + Duration::from_secs(60);
    let ctx = context_due(&rt, None, &[], Some(later));
    assert!(!ctx.is_cancelled());
    assert!(ctx.remaining().unwrap() > Duration::from_secs(50));
    assert_eq!(ctx.deadline(), Some(later));
    assert_eq!(context(&rt, None, &[]).remaining(), None);
}

#[test]
fn the_cancelled_future_completes_on_a_cancel_a_close_or_the_deadline() {
    let rt = runtime();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    let writer = std::thread::spawn(move || {
        theirs.write_all(&framed(b"\"CANCEL\"")).unwrap();
        theirs
    });
    assert_eq!(rt.block_on(ctx.cancelled()), Cancelled::ByCaller);
    let theirs = writer.join().unwrap();
    drop(theirs);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    let closer = std::thread::spawn(move || drop(theirs));
    assert_eq!(rt.block_on(ctx.cancelled()), Cancelled::CallerGone);
    closer.join().unwrap();
    let due = Instant::now() + Duration::from_millis(20);
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let ctx = context_due(&rt, Some(ours.as_fd()), &[], Some(due));
    assert_eq!(rt.block_on(ctx.cancelled()), Cancelled::DeadlinePassed);
    assert!(Instant::now() >= due);
}

#[test]
fn a_call_ending_lets_go_of_the_socket_copy() {
    let rt = runtime();
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let ctx = context(&rt, Some(ours.as_fd()), &[]);
    let waiting = ctx.clone();
    let task = rt.spawn(async move { waiting.cancelled().await });
    // Until the task has registered the socket, there is no copy.
    let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = open();
    rt.block_on(async {
        for _ in 0..1000 {
            if open() > before {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(open(), before + 1, "a copy registered with the runtime");
    ctx.end();
    rt.block_on(async {
        for _ in 0..1000 {
            if open() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(open(), before, "the copy went with the call");
    assert!(
        !task.is_finished(),
        "an uncancelled call's future never completes"
    );
    task.abort();
}

#[test]
fn children_keep_the_trace_and_flags_with_a_new_parent() {
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let child = child_traceparent(good).unwrap();
    let parsed = crate::TraceContext::parse(&child).unwrap();
    assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(parsed.sampled());
    assert_ne!(&child[36..52], "00f067aa0ba902b7", "a new parent id");
    assert_eq!(child_traceparent("00-nothex"), None);
}

#[test]
fn calls_made_inside_a_handler_inherit_its_deadline_and_trace() {
    let rt = runtime();
    assert_eq!(outgoing(), None);
    let due = Instant::now() + Duration::from_secs(5);
    let ctx = Context::new(
        Some(due),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        Some("k=v".into()),
        Watch::new(None, &[]),
        rt.handle().clone(),
    );
    let seen = crate::frame_context::with_call(anyd_wire::Codec::MsgPack, Some(&ctx), || {
        outgoing().unwrap()
    });
    assert_eq!(seen.deadline, Some(due));
    assert_eq!(seen.tracestate.as_deref(), Some("k=v"));
    assert!(seen
        .traceparent
        .unwrap()
        .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert_eq!(outgoing(), None, "put back after the scope");
}
