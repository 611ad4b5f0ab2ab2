//! `anydctl ping`: round trips to `anyd.ping`, timed, like ping(8).

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyd::{ClientSession, Value};

use super::{interrupt_flag, sleep_unless};
use crate::exit::{Exit, Failure};
use crate::output::report::{ping_summary, PingStats};
use crate::output::text::{escape, escape_line};
use crate::plan::{codec_name, Connection};

/// Pings until `count` calls are made or the user interrupts.
pub(crate) fn run(
    conn: &Connection,
    count: Option<u64>,
    interval: Duration,
) -> Result<Exit, Failure> {
    let interrupted = interrupt_flag()?;
    // The first connection is checked before anything is printed: a
    // daemon that is not there is a failure, not a series of lost pings.
    let mut session: Option<ClientSession> = Some(conn.connect()?);
    let address = conn.address.to_string();
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "PING {address}: anyd.ping over {}",
        codec_name(conn.codec)
    )?;
    let start = Instant::now();
    let mut stats = PingStats::default();
    let mut last_failure = None;
    let mut noted_fallback = false;
    for seq in 1.. {
        if seq > 1 && sleep_unless(&interrupted, interval) {
            break;
        }
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        stats.calls += 1;
        let s = match session.as_mut() {
            Some(s) => s,
            None => match conn.connect() {
                Ok(s) => session.insert(s),
                Err(f) => {
                    writeln!(out, "seq={seq}: {}", escape(&f.detail()))?;
                    last_failure = Some(f.exit());
                    if count.is_some_and(|c| seq >= c) {
                        break;
                    }
                    continue;
                }
            },
        };
        let t = Instant::now();
        let result = s.commit::<Value>("anyd.ping", ());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(_) => {
                stats.rtts_ms.push(ms);
                writeln!(out, "reply from {address}: seq={seq} time={ms:.3} ms")?;
            }
            // Any error reply is a full round trip through the daemon. A
            // Python anyd daemon has no anyd.ping and always answers this;
            // so does a Rust one whose policy refuses the caller (a refusal
            // is answered as a missing endpoint).
            Err(anyd::Error::Remote(r)) => {
                if r.kind == "NotImplementedError" && !noted_fallback {
                    noted_fallback = true;
                    eprintln!(
                        "anydctl: {address} answers anyd.ping with NotImplementedError: a \
                         Python anyd daemon has no anyd.ping, and a Rust one answers so when \
                         its policy does not let you call it; timing these replies, which \
                         make the same round trip"
                    );
                }
                stats.rtts_ms.push(ms);
                writeln!(
                    out,
                    "reply from {address}: seq={seq} time={ms:.3} ms ({})",
                    escape_line(&r.kind)
                )?;
            }
            Err(e) => {
                let f = conn.failure(e);
                writeln!(out, "seq={seq}: {}", escape(&f.detail()))?;
                last_failure = Some(f.exit());
                // The library closed the session; the next call reconnects.
                session = None;
            }
        }
        if count.is_some_and(|c| seq >= c) {
            break;
        }
    }
    drop(session);
    write!(out, "{}", ping_summary(&address, &stats, start.elapsed()))?;
    out.flush()?;
    Ok(last_failure.unwrap_or(Exit::Success))
}
