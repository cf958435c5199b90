//! [`ShellOutput`]: what a command wrote, and the capture that keeps the tail of each stream.

use tokio::io::{AsyncRead, AsyncReadExt};

/// What a command wrote, and how it exited.
///
/// ```
/// use taskrunner::{ShellTask, TaskRunner};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let out = runner.enqueue_task(ShellTask::new("echo out; echo err >&2").into_task())?.await?;
/// assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "out\n", "err\n"));
/// assert!(!out.stdout_truncated);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShellOutput {
    /// The exit code (0 for the `Ok` of a task).
    pub code: i32,
    /// The last `output_cap` bytes of stdout, as UTF-8 (invalid sequences replaced).
    pub stdout: String,
    /// The last `output_cap` bytes of stderr, likewise.
    pub stderr: String,
    /// Whether stdout was longer than what is kept.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than what is kept.
    pub stderr_truncated: bool,
}

/// Reads `stream` to its end, keeping the last `cap` bytes. Returns them as text, and
/// whether anything was dropped.
pub(super) async fn read_tail(
    stream: Option<impl AsyncRead + Unpin>,
    cap: usize,
) -> std::io::Result<(String, bool)> {
    let Some(mut stream) = stream else {
        return Ok((String::new(), false));
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..n]);
        // Trim once the excess is large, so trimming stays amortised O(1) a byte.
        if kept.len() > cap.saturating_mul(2).max(cap + 8192) {
            let excess = kept.len() - cap;
            kept.drain(..excess);
            truncated = true;
        }
    }
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
        truncated = true;
    }
    Ok((String::from_utf8_lossy(&kept).into_owned(), truncated))
}

/// The last `max` characters of `text`.
pub(super) fn tail_chars(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    match text.char_indices().nth(count.saturating_sub(max)) {
        Some((start, _)) if count > max => &text[start..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::tail_chars;

    #[test]
    fn tails_keep_whole_characters() {
        assert_eq!(tail_chars("abc", 5), "abc");
        assert_eq!(tail_chars("abcdef", 2), "ef");
        assert_eq!(tail_chars("añb", 2), "ñb");
        assert_eq!(tail_chars("", 2), "");
    }
}
