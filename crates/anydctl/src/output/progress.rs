//! The benchmark's progress bar: one line on stderr, redrawn in place
//! with a carriage return and an ANSI "erase line", shown only on a
//! terminal. Drawn here rather than with a crate: it is one line of text,
//! and the tool should start fast and stay small.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use super::report::bar;

/// Redraws one status line on stderr, if stderr is a terminal.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
}

/// What the line shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Status {
    /// How far along, 0..=1.
    pub(crate) fraction: f64,
    /// Calls answered so far.
    pub(crate) calls: u64,
    /// Error replies so far.
    pub(crate) errors: u64,
    /// Time since the start.
    pub(crate) elapsed: Duration,
}

/// Width of the bar, in terminal cells.
const WIDTH: usize = 30;

impl Progress {
    /// A bar on stderr when stderr is a terminal; otherwise one that draws
    /// nothing (a log file gets no carriage returns).
    pub(crate) fn on_stderr() -> Self {
        Progress {
            enabled: io::stderr().is_terminal(),
        }
    }

    /// Draws the line.
    pub(crate) fn draw(&self, s: Status) {
        if self.enabled {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", line(s));
            let _ = err.flush();
        }
    }

    /// Erases the line, so the report starts on a clean one.
    pub(crate) fn clear(&self) {
        if self.enabled {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// `[██████▌      ]  35%  1234 calls  24690/s  0 errors`
fn line(s: Status) -> String {
    let drawn = bar(s.fraction, WIDTH);
    let rate = if s.elapsed.is_zero() {
        0.0
    } else {
        s.calls as f64 / s.elapsed.as_secs_f64()
    };
    format!(
        "[{drawn}{}] {:3.0}%  {} calls  {rate:.0}/s  {} errors",
        " ".repeat(WIDTH - drawn.chars().count()),
        s.fraction.clamp(0.0, 1.0) * 100.0,
        s.calls,
        s.errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line() {
        let s = Status {
            fraction: 0.5,
            calls: 100,
            errors: 2,
            elapsed: Duration::from_secs(2),
        };
        let text = line(s);
        assert_eq!(
            text,
            format!(
                "[{}{}]  50%  100 calls  50/s  2 errors",
                "█".repeat(15),
                " ".repeat(15)
            )
        );
    }
}
