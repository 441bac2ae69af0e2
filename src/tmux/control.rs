//! One long-lived tmux control-mode client (`tmux -C`) per tmux server, so that typing into an
//! instance (paste, Enter, Escape) is a line written to a pipe instead of a tmux process
//! started per command: a process start costs 2-4 ms of the send's path and the CPU the CLI
//! needs at that moment.
//!
//! The client attaches to a session of its own ([`SESSION`], running `cat`, which waits on
//! its terminal and never wakes), marked `destroy-unattached` so it goes when the client does:
//! troupe's instances keep their server as before. tmux answers every command line with one
//! block, `%begin TIME NUMBER FLAGS` … `%end`/`%error` with the same three words, in the order
//! the lines were written; FLAGS 1 marks a command of this client's. Anything else it says
//! (`%sessions-changed`, `%window-add`, ...) is a notification, read and dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

/// The control client's own session: an instance's session name is `troupe-` and its id, so
/// never this.
pub const SESSION: &str = "troupe_control";

/// What tmux answered to one command line: its output, or its error message.
pub type Reply = Result<String, String>;

/// Reads the control client's output, line by line, into replies. Does no I/O.
#[derive(Debug, Default)]
pub struct Parser {
    /// Inside a block: its `TIME NUMBER FLAGS` and the lines so far.
    open: Option<(String, Vec<String>)>,
}

/// A finished block, or the client's end.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A command of this client's was answered.
    Reply(Reply),
    /// A block of a command the client did not write: the first is the one it was started
    /// with (`new-session`), whose end says the session is there.
    Other(Reply),
    /// The client exits (`%exit`).
    Exit,
    /// Nothing for a waiting command: a notification, a block's inner line, another client's
    /// block.
    Nothing,
}

impl Parser {
    pub fn line(&mut self, line: &str) -> Line {
        if let Some((words, lines)) = &mut self.open {
            let closes = |tag: &str| {
                line.strip_prefix(tag)
                    .is_some_and(|rest| rest.trim_end() == words.as_str())
            };
            let ended = if closes("%end ") {
                Some(true)
            } else if closes("%error ") {
                Some(false)
            } else {
                None
            };
            let Some(ok) = ended else {
                lines.push(line.to_string());
                return Line::Nothing;
            };
            let (words, lines) = self.open.take().expect("inside a block");
            let text = lines.join("\n");
            let reply = if ok { Ok(text) } else { Err(text) };
            // FLAGS 1: a command this client wrote; 0: the one it was started with.
            return match words.rsplit(' ').next() {
                Some("1") => Line::Reply(reply),
                _ => Line::Other(reply),
            };
        }
        if let Some(words) = line.strip_prefix("%begin ") {
            self.open = Some((words.trim_end().to_string(), Vec::new()));
            return Line::Nothing;
        }
        if line.starts_with("%exit") {
            return Line::Exit;
        }
        Line::Nothing
    }
}

/// Whether `arg` reaches tmux's command parser as itself when written bare: no quotes,
/// spaces, `#` (formats), `$` (variables), `~` (home), `;` (a second command, which would
/// get a block of its own and answer the next command's waiter), `\`.
pub fn plain(arg: &str) -> bool {
    !arg.is_empty()
        && arg.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '.' | '/' | '=' | ':' | '@' | '%' | '+' | '-')
        })
}

/// `arg` as a control client writes it: a [`plain`] word bare, a format (`#{name}` and
/// words, as `display-message` takes) in single quotes, where tmux's parser takes every
/// character as it is; anything else not at all. A format of these characters can only name
/// tmux's variables: running a command needs `#(`.
pub fn word(arg: &str) -> Option<std::borrow::Cow<'_, str>> {
    if plain(arg) {
        return Some(arg.into());
    }
    let format = arg.contains("#{")
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '#' | '{' | '}'));
    format.then(|| format!("'{arg}'").into())
}

/// A running control client. Commands are answered in the order they were written, so a
/// command's waiter joins the queue in the same step as its line is written.
pub struct Client {
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<Reply>>>>,
    ended: Arc<std::sync::atomic::AtomicBool>,
    _child: Child,
}

impl Client {
    /// Starts the client on `command` (a `tmux -L socket` command with the server's
    /// environment set): it makes or joins [`SESSION`] and marks it to go with the client.
    pub async fn start(mut command: tokio::process::Command) -> std::io::Result<Client> {
        command
            .args([
                "-C",
                "new-session",
                "-A",
                "-s",
                SESSION,
                "-x",
                "20",
                "-y",
                "5",
                "cat",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let waiting: Arc<Mutex<VecDeque<oneshot::Sender<Reply>>>> = Arc::default();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (queue, gone) = (waiting.clone(), ended.clone());
        let (started_tx, started) = oneshot::channel::<Reply>();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut parser = Parser::default();
            let mut started_tx = Some(started_tx);
            let mut bytes = Vec::new();
            // By bytes: a screen a capture brings back may hold bytes that are not UTF-8,
            // and one such line must not end the client.
            while matches!(reader.read_until(b'\n', &mut bytes).await, Ok(n) if n > 0) {
                let parsed = {
                    let text = String::from_utf8_lossy(&bytes);
                    parser.line(text.strip_suffix('\n').unwrap_or(&text))
                };
                bytes.clear();
                match parsed {
                    Line::Other(reply) => {
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(reply);
                        }
                    }
                    Line::Reply(reply) => {
                        let next = queue.lock().expect("control queue poisoned").pop_front();
                        if let Some(tx) = next {
                            let _ = tx.send(reply);
                        }
                    }
                    Line::Exit => break,
                    Line::Nothing => {}
                }
            }
            gone.store(true, std::sync::atomic::Ordering::SeqCst);
            // Whoever still waits is told the client is gone (their sender is dropped).
            queue.lock().expect("control queue poisoned").clear();
        });
        // A line written before the session is made may run before it (seen: "no such
        // session"), so nothing is written until new-session has answered.
        match tokio::time::timeout(REPLY_WITHIN, started).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => return Err(std::io::Error::other(e)),
            Ok(Err(_)) => return Err(std::io::Error::other("tmux -C ended as it started")),
            Err(_) => return Err(std::io::Error::other("tmux -C did not start in time")),
        }
        let client = Client {
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            waiting,
            ended,
            _child: child,
        };
        client
            .run(&[
                // Named: with no target, tmux picks the session most recently used, which may
                // be an instance's (seen: it went at once, with no client attached).
                "set-option",
                "-t",
                &format!("={SESSION}:"),
                "destroy-unattached",
                "on",
            ])
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        // An attached client's status line is redrawn on a timer, which costs tmux a little
        // CPU every few seconds while every instance idles; this client shows none.
        client
            .run(&["set-option", "-t", &format!("={SESSION}:"), "status", "off"])
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(client)
    }

    pub fn ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs one command (every argument a [`word`]); its output, or why not.
    pub async fn run(&self, args: &[&str]) -> Result<String, Failure> {
        let words: Option<Vec<_>> = args.iter().map(|a| word(a)).collect();
        let Some(words) = words else {
            debug_assert!(false, "not words: {args:?}");
            return Err(Failure::NotWritten);
        };
        let mut line = words.join(" ");
        line.push('\n');
        let (tx, rx) = oneshot::channel();
        // Queued and written in a task of its own, so a caller that goes away (a client that
        // hung up) cannot stop it between the two: a waiter queued for a line never written,
        // or half a line, would hand every later command the answer of the one before it.
        let (stdin, waiting, ended) =
            (self.stdin.clone(), self.waiting.clone(), self.ended.clone());
        let written = tokio::spawn(async move {
            let mut stdin = stdin.lock().await;
            if ended.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            waiting
                .lock()
                .expect("control queue poisoned")
                .push_back(tx);
            if stdin.write_all(line.as_bytes()).await.is_err() {
                // The reader sees the same end and drops the waiter just queued.
                ended.store(true, std::sync::atomic::Ordering::SeqCst);
                return false;
            }
            true
        });
        if !matches!(written.await, Ok(true)) {
            return Err(Failure::NotWritten);
        }
        match tokio::time::timeout(REPLY_WITHIN, rx).await {
            Ok(Ok(reply)) => reply.map_err(Failure::Tmux),
            // Written, then the client ended: whether tmux ran it is not known, so it is not
            // run again (an Enter twice would send an empty message).
            Ok(Err(_)) => Err(Failure::Tmux(
                "the tmux control client ended before it answered".into(),
            )),
            Err(_) => Err(Failure::Tmux(format!(
                "tmux did not answer within {}s",
                REPLY_WITHIN.as_secs()
            ))),
        }
    }
}

/// Why a command did not come back with output.
#[derive(Debug)]
pub enum Failure {
    /// The line was never written: the client had ended.
    NotWritten,
    /// tmux's error message, or the client lost after the line was written.
    Tmux(String),
}

/// A command tmux has not answered in this long is taken as lost (tmux answers in
/// microseconds; a stuck server is what this catches).
const REPLY_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_plain_or_quoted_formats_and_nothing_else() {
        assert_eq!(word("=troupe_a:").as_deref(), Some("=troupe_a:"));
        assert_eq!(
            word("#{pane_dead} #{pane_pid}").as_deref(),
            Some("'#{pane_dead} #{pane_pid}'")
        );
        for bad in [
            "#(rm -rf ~)",
            "#{pane_pid}'; kill-server; '",
            "a b",
            "#{pane_pid};",
            "$HOME",
            "",
            "#{=10:pane_title}",
        ] {
            assert_eq!(word(bad), None, "{bad:?}");
        }
    }

    /// As tmux 3.3a wrote it for `tmux -C new-session …` and five commands (recorded).
    const RECORDED: &str = "%begin 1796588636 259 0
%end 1796588636 259 0
%window-add @0
%sessions-changed
%session-changed $0 ~ctl
%window-renamed @0 bash
%begin 1796588636 266 1
can't find session: x
%error 1796588636 266 1
%begin 1796588636 268 1
%end 1796588636 268 1
%begin 1796588636 270 1
~ctl
%end 1796588636 270 1
%exit";

    #[test]
    fn blocks_become_replies_in_order_and_the_rest_is_dropped() {
        let mut p = Parser::default();
        let replies: Vec<Line> = RECORDED
            .lines()
            .map(|l| p.line(l))
            .filter(|l| *l != Line::Nothing)
            .collect();
        assert_eq!(
            replies,
            vec![
                Line::Other(Ok(String::new())),
                Line::Reply(Err("can't find session: x".into())),
                Line::Reply(Ok(String::new())),
                Line::Reply(Ok("~ctl".into())),
                Line::Exit,
            ]
        );
    }

    #[test]
    fn a_line_that_looks_like_an_end_ends_only_its_own_block() {
        let mut p = Parser::default();
        assert_eq!(p.line("%begin 5 9 1"), Line::Nothing);
        assert_eq!(p.line("%end 1 2 1"), Line::Nothing, "another block's words");
        assert_eq!(p.line("%exit"), Line::Nothing, "output, inside a block");
        assert_eq!(
            p.line("%end 5 9 1"),
            Line::Reply(Ok("%end 1 2 1\n%exit".into()))
        );
    }

    #[test]
    fn only_plain_words_are_written_bare() {
        for ok in [
            "send-keys",
            "=troupe-dev-1a2b:",
            "Enter",
            "C-u",
            "/tmp/x/paste-1",
        ] {
            assert!(plain(ok), "{ok}");
        }
        assert!(!plain(";"), "a second command answers out of turn");
        for bad in [
            "",
            "a b",
            "#{pane_pid}",
            "$HOME",
            "~/x",
            "a;b",
            "x;",
            "\"q\"",
            "a\\b",
            "a\nb",
        ] {
            assert!(!plain(bad), "{bad:?}");
        }
    }
}
