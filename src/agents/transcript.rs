//! Follows an append-only JSONL transcript from a byte offset, yielding whole lines only, so a
//! line the CLI is halfway through writing is read on the next call, never half-parsed.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct TranscriptReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl TranscriptReader {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TranscriptReader {
            path: path.into(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Complete lines appended since the last call. A missing file is simply empty: the CLI
    /// creates it on the first prompt.
    pub fn read_new_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            // Truncated or replaced: start over rather than read garbage.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1])
                .trim()
                .to_string();
            if !line.is_empty() {
                lines.push(line);
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn yields_only_complete_lines_and_resumes_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::new(&path);
        assert!(reader.read_new_lines().unwrap().is_empty());

        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "{{\"a\":1}}\n{{\"b\":").unwrap();
        f.flush().unwrap();
        assert_eq!(reader.read_new_lines().unwrap(), vec!["{\"a\":1}"]);
        writeln!(f, "2}}").unwrap();
        f.flush().unwrap();
        assert_eq!(reader.read_new_lines().unwrap(), vec!["{\"b\":2}"]);
        assert!(reader.read_new_lines().unwrap().is_empty());
    }
}
